// Batcher: results reach their own tasks, runner errors fan out per batch, shutdown finishes
// every waiting task exactly once, Schedule's ownership contract, PrepareThread errors, full
// batches with several runners, stats. A fake runner and a fake clock; no sleeps: the tests
// wait (bounded) on conditions and never assert timing. Tasks carry an id in plan.crop_top.
#include "server/batching/batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace dinov3::batching {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// Bound for every wait on a condition; reached only when the code under test hangs.
constexpr absl::Duration kHang = absl::Seconds(30);

// Stays at one instant unless a test moves it.
class FakeClock : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::FromUnixSeconds(1'000'000);
};

// Records how each task was finished, by id.
class Tracker {
 public:
  std::unique_ptr<EmbedTask> MakeTask(int id, int height = 224) {
    auto task = std::make_unique<EmbedTask>();
    task->plan.crop_top = id;
    task->plan.out_height = height;
    task->plan.out_width = 224;
    task->done = [this, id](absl::StatusOr<EmbeddingResult> result) {
      absl::MutexLock lock(&mu_);
      ++calls_[id];
      ++total_;
      results_.insert_or_assign(id, std::move(result));
    };
    return task;
  }
  int calls(int id) const {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(id);
    return it == calls_.end() ? 0 : it->second;
  }
  absl::StatusOr<EmbeddingResult> result(int id) const {
    absl::MutexLock lock(&mu_);
    auto it = results_.find(id);
    if (it == results_.end()) return absl::NotFoundError("not finished");
    return it->second;
  }
  int total() const {
    absl::MutexLock lock(&mu_);
    return total_;
  }
  // Waits until `n` done calls were made in all; false after kHang.
  bool AwaitTotal(int n) const {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n] { return total_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kHang);
  }

 private:
  mutable absl::Mutex mu_;
  std::map<int, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<int, absl::StatusOr<EmbeddingResult>> results_ ABSL_GUARDED_BY(mu_);
  int total_ ABSL_GUARDED_BY(mu_) = 0;
};

// Holds runners inside Run while closed; shared by several runners.
class Gate {
 public:
  void Close() {
    absl::MutexLock lock(&mu_);
    open_ = false;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    open_ = true;
  }
  void Pass() {
    absl::MutexLock lock(&mu_);
    ++waiting_;
    mu_.Await(absl::Condition(&open_));
    --waiting_;
  }
  // Waits until `n` runners are held; false after kHang.
  bool AwaitWaiting(int n) {
    absl::MutexLock lock(&mu_);
    auto reached = [this, n] { return waiting_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&reached), kHang);
  }

 private:
  absl::Mutex mu_;
  bool open_ ABSL_GUARDED_BY(mu_) = true;
  int waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

// Finishes every task with grid_height = its id and grid_width = task->batch_size, or every
// task of the batches numbered in `fail` (0-based, per runner) with INTERNAL.
class FakeRunner : public BatchRunner {
 public:
  explicit FakeRunner(Gate* gate = nullptr, std::set<int> fail = {},
                      absl::Status prepare = absl::OkStatus())
      : gate_(gate), fail_(std::move(fail)), prepare_(std::move(prepare)) {}

  absl::Status PrepareThread() override {
    absl::MutexLock lock(&mu_);
    prepare_thread_ = std::this_thread::get_id();
    return prepare_;
  }

  void Run(TaskBatch batch) override {
    int index;
    {
      absl::MutexLock lock(&mu_);
      index = static_cast<int>(batches_.size());
      std::vector<int> ids;
      for (const auto& task : batch) ids.push_back(task->plan.crop_top);
      batches_.push_back(ids);
      if (std::this_thread::get_id() != prepare_thread_) ++wrong_thread_;
    }
    if (gate_ != nullptr) gate_->Pass();
    for (auto& task : batch) {
      if (fail_.count(index) > 0) {
        task->Finish(absl::InternalError("fake runner failed"));
        continue;
      }
      EmbeddingResult result;
      result.grid_height = task->plan.crop_top;
      result.grid_width = task->batch_size;
      task->Finish(std::move(result));
    }
  }

  std::vector<std::vector<int>> batches() const {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  int wrong_thread() const {
    absl::MutexLock lock(&mu_);
    return wrong_thread_;
  }

 private:
  Gate* const gate_;
  const std::set<int> fail_;
  const absl::Status prepare_;
  mutable absl::Mutex mu_;
  std::thread::id prepare_thread_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<int>> batches_ ABSL_GUARDED_BY(mu_);
  int wrong_thread_ ABSL_GUARDED_BY(mu_) = 0;
};

// Opens `gate` when it goes out of scope. Declared after a Batcher, it runs first, so a failed
// ASSERT cannot leave the batcher's destructor joining a runner held in the gate.
class OpenOnExit {
 public:
  explicit OpenOnExit(Gate& gate) : gate_(gate) {}
  ~OpenOnExit() { gate_.Open(); }

 private:
  Gate& gate_;
};

BatchingOptions Options(int max_batch_size, absl::Duration delay, int max_queue_size = 256) {
  BatchingOptions options;
  options.max_batch_size = max_batch_size;
  options.max_queue_delay = delay;
  options.max_queue_size = max_queue_size;
  return options;
}

void ScheduleOk(Batcher& batcher, Tracker& tracker, int id, int height = 224) {
  auto task = tracker.MakeTask(id, height);
  absl::Status status = batcher.Schedule(task);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(task, nullptr);
}

TEST(Batcher, ResultsGoBackToTheirOwnTasks) {
  FakeClock clock;
  Tracker tracker;
  FakeRunner runner;
  constexpr int kTasks = 40;
  {
    Batcher batcher(Options(4, absl::ZeroDuration()), {&runner}, &clock);
    ASSERT_TRUE(batcher.WaitUntilPrepared().ok());
    for (int id = 0; id < kTasks; ++id) {
      ScheduleOk(batcher, tracker, id, id % 3 == 0 ? 448 : 224);
    }
    ASSERT_TRUE(tracker.AwaitTotal(kTasks));
    const BatcherStats stats = batcher.stats();
    EXPECT_EQ(stats.images, kTasks);
    EXPECT_EQ(stats.batches, static_cast<int64_t>(runner.batches().size()));
    EXPECT_LE(stats.max_batch_size_seen, 4);
    EXPECT_EQ(batcher.queued(), 0);
  }
  std::map<int, int> batch_size_of;
  for (const std::vector<int>& ids : runner.batches()) {
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << "arrival order within a batch";
    for (int id : ids) batch_size_of[id] = static_cast<int>(ids.size());
  }
  for (int id = 0; id < kTasks; ++id) {
    EXPECT_EQ(tracker.calls(id), 1) << id;
    absl::StatusOr<EmbeddingResult> result = tracker.result(id);
    ASSERT_TRUE(result.ok()) << id << ": " << result.status();
    EXPECT_EQ(result->grid_height, id);
    EXPECT_EQ(result->grid_width, batch_size_of[id]) << "task->batch_size of " << id;
  }
  EXPECT_EQ(runner.wrong_thread(), 0);  // PrepareThread and Run on one thread
}

TEST(Batcher, RunnerErrorFansOutToItsBatchAndLaterBatchesStillRun) {
  FakeClock clock;
  Tracker tracker;
  Gate gate;
  FakeRunner runner(&gate, /*fail=*/{0});
  gate.Close();
  Batcher batcher(Options(4, absl::Hours(1)), {&runner}, &clock);
  OpenOnExit open_on_exit(gate);
  batcher.Expect(8);  // all eight are on their way: only full batches form
  for (int id = 0; id < 4; ++id) ScheduleOk(batcher, tracker, id);
  ASSERT_TRUE(gate.AwaitWaiting(1));  // batch 0 = {0..3} is in Run
  for (int id = 4; id < 8; ++id) ScheduleOk(batcher, tracker, id);
  batcher.Unexpect(8);
  gate.Open();
  ASSERT_TRUE(tracker.AwaitTotal(8));
  EXPECT_THAT(runner.batches(), ElementsAre(ElementsAre(0, 1, 2, 3), ElementsAre(4, 5, 6, 7)));
  for (int id = 0; id < 8; ++id) {
    EXPECT_EQ(tracker.calls(id), 1) << id;
    absl::StatusOr<EmbeddingResult> result = tracker.result(id);
    if (id < 4) {
      EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal) << id;
    } else {
      ASSERT_TRUE(result.ok()) << id << ": " << result.status();
      EXPECT_EQ(result->grid_height, id);
      EXPECT_EQ(result->grid_width, 4);
    }
  }
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batches, 2);
  EXPECT_EQ(stats.images, 8);
  EXPECT_EQ(stats.max_batch_size_seen, 4);
}

// Fills a batcher (one runner, max_batch_size 2, max_queue_size 3) so that batch {0, 1} is held
// in Run and tasks 2, 3, 4 wait; then calls Shutdown(grace) on another thread and returns once
// the batcher refuses new tasks (a probe sees UNAVAILABLE instead of RESOURCE_EXHAUSTED).
class BatcherShutdown : public ::testing::Test {
 protected:
  void FillAndStartShutdown(absl::Duration grace) {
    gate_.Close();
    batcher_.Expect(2);  // both on their way: they form one full batch
    for (int id = 0; id < 2; ++id) ScheduleOk(batcher_, tracker_, id);
    batcher_.Unexpect(2);
    ASSERT_TRUE(gate_.AwaitWaiting(1));
    for (int id = 2; id < 5; ++id) ScheduleOk(batcher_, tracker_, id);
    auto probe = tracker_.MakeTask(99);
    ASSERT_EQ(batcher_.Schedule(probe).code(), absl::StatusCode::kResourceExhausted);
    shutdown_ = std::thread([this, grace] { batcher_.Shutdown(grace); });
    const absl::Time give_up = absl::Now() + kHang;
    absl::Status status;
    while ((status = batcher_.Schedule(probe)).code() == absl::StatusCode::kResourceExhausted &&
           absl::Now() < give_up) {
      std::this_thread::yield();
    }
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    ASSERT_NE(probe, nullptr);  // refused tasks stay with the caller, unfinished
    EXPECT_FALSE(probe->finished());
  }
  void TearDown() override {
    gate_.Open();
    if (shutdown_.joinable()) shutdown_.join();
  }

  FakeClock clock_;
  Tracker tracker_;
  Gate gate_;
  FakeRunner runner_{&gate_};
  Batcher batcher_{Options(2, absl::Hours(1), /*max_queue_size=*/3), {&runner_}, &clock_};
  std::thread shutdown_;
};

TEST_F(BatcherShutdown, ZeroGraceFinishesWaitingTasksAsUnavailable) {
  ASSERT_NO_FATAL_FAILURE(FillAndStartShutdown(absl::ZeroDuration()));
  gate_.Open();  // the running batch completes; nothing else runs
  shutdown_.join();
  EXPECT_THAT(runner_.batches(), ElementsAre(ElementsAre(0, 1)));
  for (int id = 0; id < 5; ++id) {
    EXPECT_EQ(tracker_.calls(id), 1) << id;
    absl::StatusOr<EmbeddingResult> result = tracker_.result(id);
    if (id < 2) {
      EXPECT_TRUE(result.ok()) << id << ": " << result.status();
    } else {
      EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << id;
    }
  }
  EXPECT_EQ(tracker_.calls(99), 0);
  EXPECT_EQ(tracker_.total(), 5);
  EXPECT_EQ(batcher_.queued(), 0);
  EXPECT_EQ(batcher_.stats().batches, 1);
}

TEST_F(BatcherShutdown, GenerousGraceRunsWaitingTasks) {
  ASSERT_NO_FATAL_FAILURE(FillAndStartShutdown(absl::Hours(1)));
  gate_.Open();
  shutdown_.join();
  // Draining does not wait for fuller batches: {2, 3} is full, {4} goes alone at once.
  EXPECT_THAT(runner_.batches(), ElementsAre(ElementsAre(0, 1), ElementsAre(2, 3), ElementsAre(4)));
  for (int id = 0; id < 5; ++id) {
    EXPECT_EQ(tracker_.calls(id), 1) << id;
    absl::StatusOr<EmbeddingResult> result = tracker_.result(id);
    ASSERT_TRUE(result.ok()) << id << ": " << result.status();
    EXPECT_EQ(result->grid_height, id);
  }
  EXPECT_EQ(tracker_.total(), 5);
  EXPECT_EQ(batcher_.stats().images, 5);
}

TEST(Batcher, ScheduleAfterShutdownIsUnavailableAndLeavesTheTask) {
  FakeClock clock;
  Tracker tracker;
  FakeRunner runner;
  auto task = tracker.MakeTask(0);
  {
    Batcher batcher(Options(4, absl::ZeroDuration()), {&runner}, &clock);
    batcher.Shutdown(absl::Seconds(1));
    absl::Status status = batcher.Schedule(task);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
    ASSERT_NE(task, nullptr);
    EXPECT_FALSE(task->finished());
    batcher.Shutdown(absl::ZeroDuration());  // a second call is harmless
  }
  EXPECT_EQ(tracker.total(), 0);
  EXPECT_THAT(runner.batches(), IsEmpty());
}

TEST(Batcher, WaitUntilPreparedReturnsAPrepareThreadError) {
  FakeClock clock;
  Tracker tracker;
  FakeRunner good;
  FakeRunner bad(nullptr, {}, absl::FailedPreconditionError("no device 7"));
  {
    Batcher batcher(Options(4, absl::ZeroDuration()), {&good, &bad}, &clock);
    absl::Status status = batcher.WaitUntilPrepared();
    EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(status.message(), HasSubstr("no device 7"));
    // The healthy instance still serves; the failed one serves nothing.
    for (int id = 0; id < 6; ++id) ScheduleOk(batcher, tracker, id);
    ASSERT_TRUE(tracker.AwaitTotal(6));
  }
  EXPECT_THAT(bad.batches(), IsEmpty());
  for (int id = 0; id < 6; ++id) {
    EXPECT_EQ(tracker.calls(id), 1) << id;
    EXPECT_TRUE(tracker.result(id).ok()) << id;
  }
}

TEST(Batcher, WaitUntilPreparedIsOkWhenEveryRunnerPrepared) {
  FakeClock clock;
  FakeRunner a, b, c;
  Batcher batcher(Options(4, absl::ZeroDuration()), {&a, &b, &c}, &clock);
  EXPECT_TRUE(batcher.WaitUntilPrepared().ok());
}

TEST(Batcher, TwoBlockedRunnersLetFullBatchesForm) {
  FakeClock clock;
  Tracker tracker;
  Gate gate;
  FakeRunner a(&gate), b(&gate);
  gate.Close();
  Batcher batcher(Options(4, absl::Hours(1)), {&a, &b}, &clock);
  OpenOnExit open_on_exit(gate);
  ASSERT_TRUE(batcher.WaitUntilPrepared().ok());
  batcher.Expect(24);  // more is on its way: idle runners wait for full batches
  for (int id = 0; id < 4; ++id) ScheduleOk(batcher, tracker, id);
  ASSERT_TRUE(gate.AwaitWaiting(1));
  for (int id = 4; id < 8; ++id) ScheduleOk(batcher, tracker, id);
  ASSERT_TRUE(gate.AwaitWaiting(2));  // both runners busy
  for (int id = 8; id < 24; ++id) ScheduleOk(batcher, tracker, id);
  EXPECT_EQ(batcher.queued(), 16);
  batcher.Unexpect(24);
  gate.Open();
  ASSERT_TRUE(tracker.AwaitTotal(24));

  std::vector<std::vector<int>> batches = a.batches();
  for (const auto& ids : b.batches()) batches.push_back(ids);
  EXPECT_THAT(batches, SizeIs(6));
  EXPECT_THAT(batches, Each(SizeIs(4)));
  EXPECT_FALSE(a.batches().empty());
  EXPECT_FALSE(b.batches().empty());
  std::set<int> seen;
  for (const auto& ids : batches) seen.insert(ids.begin(), ids.end());
  EXPECT_THAT(seen, SizeIs(24));
  for (int id = 0; id < 24; ++id) {
    EXPECT_EQ(tracker.calls(id), 1) << id;
    absl::StatusOr<EmbeddingResult> result = tracker.result(id);
    ASSERT_TRUE(result.ok()) << id;
    EXPECT_EQ(result->grid_height, id);
    EXPECT_EQ(result->grid_width, 4);  // task->batch_size
  }
  const BatcherStats stats = batcher.stats();
  EXPECT_EQ(stats.batches, 6);
  EXPECT_EQ(stats.images, 24);
  EXPECT_EQ(stats.max_batch_size_seen, 4);
}

TEST(Batcher, IdleRunnerTakesALoneTaskWhenNothingElseIsExpected) {
  FakeClock clock;  // never advanced: the one-hour delay never passes
  Tracker tracker;
  Gate gate;
  FakeRunner runner(&gate);
  Batcher batcher(Options(8, absl::Hours(1)), {&runner}, &clock);
  ASSERT_TRUE(batcher.WaitUntilPrepared().ok());
  ScheduleOk(batcher, tracker, 0);
  ASSERT_TRUE(tracker.AwaitTotal(1));  // ran although the batch is not full
  batcher.Expect(2);                   // a two-image request is being decoded
  ScheduleOk(batcher, tracker, 1);
  ScheduleOk(batcher, tracker, 2);
  batcher.Unexpect(2);  // both scheduled: they were held back to share one batch
  ASSERT_TRUE(tracker.AwaitTotal(3));
  EXPECT_THAT(runner.batches(), ElementsAre(ElementsAre(0), ElementsAre(1, 2)));
}

TEST(Batcher, CancelledAndExpiredTasksAreFinishedWithoutRunning) {
  FakeClock clock;
  Tracker tracker;
  Gate gate;
  FakeRunner runner(&gate);
  gate.Close();
  Batcher batcher(Options(2, absl::Hours(1)), {&runner}, &clock);
  OpenOnExit open_on_exit(gate);
  batcher.Expect(2);  // both on their way: they form one full batch
  for (int id = 0; id < 2; ++id) ScheduleOk(batcher, tracker, id);
  batcher.Unexpect(2);
  ASSERT_TRUE(gate.AwaitWaiting(1));

  auto expiring = tracker.MakeTask(2);
  expiring->deadline = clock.Now() + absl::Seconds(1);
  ASSERT_TRUE(batcher.Schedule(expiring).ok());
  auto cancelled = tracker.MakeTask(3);
  cancelled->is_cancelled = [] { return true; };
  ASSERT_TRUE(batcher.Schedule(cancelled).ok());
  // gRPC reports a call whose deadline passed as cancelled too: the deadline is what counts.
  auto expired_and_cancelled = tracker.MakeTask(4);
  expired_and_cancelled->deadline = clock.Now() + absl::Seconds(1);
  expired_and_cancelled->is_cancelled = [] { return true; };
  ASSERT_TRUE(batcher.Schedule(expired_and_cancelled).ok());
  clock.Advance(absl::Seconds(2));
  gate.Open();
  ASSERT_TRUE(tracker.AwaitTotal(5));

  EXPECT_EQ(tracker.result(2).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(tracker.result(3).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(tracker.result(4).status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(runner.batches(), ElementsAre(ElementsAre(0, 1)));
  for (int id = 0; id < 5; ++id) EXPECT_EQ(tracker.calls(id), 1) << id;
}

// Producers race Schedule against the runners and a shutdown: every accepted task is finished
// exactly once and every refused task is left with its producer, unfinished.
TEST(Batcher, EveryAcceptedTaskIsFinishedExactlyOnceUnderConcurrency) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 200;
  Tracker tracker;
  FakeRunner a, b;
  std::vector<std::vector<int>> accepted(kProducers);
  std::vector<int> refused_but_finished(kProducers, 0);
  absl::Notification halfway;
  {
    // The real clock with a short delay exercises the timed waits; nothing asserts timing.
    Batcher batcher(Options(4, absl::Microseconds(200), /*max_queue_size=*/16), {&a, &b});
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          const int id = p * kPerProducer + i;
          auto task = tracker.MakeTask(id, 224 + 16 * (id % 3));
          if (id % 7 == 0) task->is_cancelled = [] { return true; };
          if (batcher.Schedule(task).ok()) {
            accepted[p].push_back(id);
          } else if (task == nullptr || task->finished()) {
            ++refused_but_finished[p];
          }
          if (p == 0 && i == kPerProducer / 2) halfway.Notify();
        }
      });
    }
    halfway.WaitForNotification();
    batcher.Shutdown(absl::Milliseconds(1));
    for (std::thread& producer : producers) producer.join();
  }
  int accepted_total = 0;
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(refused_but_finished[p], 0);
    accepted_total += static_cast<int>(accepted[p].size());
    for (int id : accepted[p]) EXPECT_EQ(tracker.calls(id), 1) << id;
  }
  EXPECT_EQ(tracker.total(), accepted_total);
  EXPECT_GT(accepted_total, 0);
}

}  // namespace
}  // namespace dinov3::batching
