// TaskQueue: ownership on Schedule, same-shape batches, dead tasks dropped before the runner,
// and every accepted task finished exactly once, also at shutdown.
#include "server/batching/task_queue.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"

namespace dinov3::batching {
namespace {

// Records batches; blocks in Run until released, so tasks pile up behind the first batch.
class FakeRunner : public BatchRunner {
 public:
  void Run(TaskBatch batch) override {
    {
      absl::MutexLock lock(&mu_);
      std::vector<int> heights;
      for (auto& task : batch) heights.push_back(task->plan.out_height);
      batches_.push_back(heights);
    }
    if (!started_.HasBeenNotified()) started_.Notify();
    release_.WaitForNotification();
    for (auto& task : batch) task->Finish(EmbeddingResult{});
  }
  std::vector<std::vector<int>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  absl::Notification started_;
  absl::Notification release_;

 private:
  absl::Mutex mu_;
  std::vector<std::vector<int>> batches_;
};

struct Outcome {
  std::atomic<int> calls{0};
  std::atomic<int> last_code{-1};
};

std::unique_ptr<EmbedTask> MakeTask(int height, Outcome* outcome) {
  auto task = std::make_unique<EmbedTask>();
  task->plan.out_height = height;
  task->plan.out_width = 224;
  task->done = [outcome](absl::StatusOr<EmbeddingResult> result) {
    outcome->last_code = static_cast<int>(result.status().code());
    ++outcome->calls;
  };
  return task;
}

TEST(TaskQueue, FullQueueRejectsWithoutTakingTheTask) {
  FakeRunner runner;
  Outcome outcome;
  {
    TaskQueue queue({/*max_queue_size=*/1, /*max_batch_size=*/4, /*num_workers=*/0}, &runner);
    auto first = MakeTask(224, &outcome);
    ASSERT_TRUE(queue.Schedule(first).ok());
    EXPECT_EQ(first, nullptr);
    auto second = MakeTask(224, &outcome);
    absl::Status full = queue.Schedule(second);
    EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(full.message(), ::testing::HasSubstr("max_queue_size"));
    ASSERT_NE(second, nullptr);  // still ours
  }  // shutdown finishes the queued task
  EXPECT_EQ(outcome.calls, 1);
  EXPECT_EQ(outcome.last_code, static_cast<int>(absl::StatusCode::kUnavailable));
}

TEST(TaskQueue, BatchesOnlySameShapeAndDropsDeadTasks) {
  FakeRunner runner;
  Outcome ok, cancelled, expired;
  TaskQueue queue({16, 4, 1}, &runner);
  auto blocker = MakeTask(224, &ok);
  ASSERT_TRUE(queue.Schedule(blocker).ok());
  runner.started_.WaitForNotification();  // the worker is busy: the rest queue up
  for (int height : {224, 448, 224, 448, 224}) {
    auto task = MakeTask(height, &ok);
    ASSERT_TRUE(queue.Schedule(task).ok());
  }
  auto dead = MakeTask(224, &cancelled);
  dead->is_cancelled = [] { return true; };
  ASSERT_TRUE(queue.Schedule(dead).ok());
  auto late = MakeTask(224, &expired);
  late->deadline = absl::Now() - absl::Seconds(1);
  ASSERT_TRUE(queue.Schedule(late).ok());
  runner.release_.Notify();
  // Bounded wait for the worker to drain the queue (no timing is asserted).
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (ok.calls + cancelled.calls + expired.calls < 8 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(ok.calls, 6);
  EXPECT_EQ(cancelled.calls, 1);
  EXPECT_EQ(cancelled.last_code, static_cast<int>(absl::StatusCode::kCancelled));
  EXPECT_EQ(expired.calls, 1);
  EXPECT_EQ(expired.last_code, static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  // The oldest task first, then all queued tasks of its shape, then the other shape.
  EXPECT_THAT(runner.batches(), ::testing::ElementsAre(std::vector<int>{224},
                                                        std::vector<int>{224, 224, 224},
                                                        std::vector<int>{448, 448}));
}

}  // namespace
}  // namespace dinov3::batching
