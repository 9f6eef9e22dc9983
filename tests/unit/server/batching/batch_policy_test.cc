// BatchPolicy: every batching rule, driven with explicit absl::Time values (the "clock" is a
// variable the test advances). No threads, no sleeps. Tasks carry an id in plan.crop_top.
#include "server/batching/batch_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace dinov3::batching {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

struct TaskSpec {
  int id = 0;
  int height = 224;
  int width = 224;
  DType dtype = DType::kFloat32;
  int priority = 0;
  absl::Time deadline = absl::InfiniteFuture();
  std::vector<int> layers = {};
  bool layer_norm = true;
};

// A task whose `done` counts its calls in *calls (may be null: not counted).
std::unique_ptr<EmbedTask> MakeTask(const TaskSpec& spec, int* calls = nullptr) {
  auto task = std::make_unique<EmbedTask>();
  task->plan.crop_top = spec.id;
  task->plan.out_height = spec.height;
  task->plan.out_width = spec.width;
  task->dtype = spec.dtype;
  task->layers = {spec.layers, spec.layer_norm};
  task->priority = spec.priority;
  task->deadline = spec.deadline;
  task->done = [calls](absl::StatusOr<EmbeddingResult>) {
    if (calls != nullptr) ++*calls;
  };
  return task;
}

std::vector<int> Ids(const TaskBatch& batch) {
  std::vector<int> ids;
  for (const auto& task : batch) ids.push_back(task->plan.crop_top);
  return ids;
}

BatchingOptions Options(int max_batch_size, absl::Duration delay) {
  BatchingOptions options;
  options.max_batch_size = max_batch_size;
  options.max_queue_delay = delay;
  return options;
}

void AddOk(BatchPolicy& policy, const TaskSpec& spec, absl::Time now) {
  auto task = MakeTask(spec);
  ASSERT_TRUE(policy.Add(task, now).ok());
  EXPECT_EQ(task, nullptr);
}

TEST(BatchPolicy, FullBatchFormsBeforeTheDelay) {
  BatchPolicy policy(Options(4, absl::Seconds(1)));
  for (int id = 0; id < 3; ++id) AddOk(policy, {.id = id}, kT0);
  BatchPolicy::Decision waiting = policy.NextBatch(kT0);
  EXPECT_THAT(waiting.batch, IsEmpty());
  EXPECT_THAT(waiting.dead, IsEmpty());
  ASSERT_TRUE(waiting.wake_at.has_value());
  EXPECT_EQ(*waiting.wake_at, kT0 + absl::Seconds(1));

  AddOk(policy, {.id = 3}, kT0);
  AddOk(policy, {.id = 4}, kT0);
  BatchPolicy::Decision full = policy.NextBatch(kT0);
  EXPECT_THAT(Ids(full.batch), ElementsAre(0, 1, 2, 3));  // arrival order
  EXPECT_EQ(policy.size(), 1);
  EXPECT_THAT(policy.NextBatch(kT0).batch, IsEmpty());  // the fifth waits for the delay
}

TEST(BatchPolicy, PartialBatchFormsWhenTheOldestWaitedTheDelay) {
  const absl::Duration delay = absl::Milliseconds(10);
  BatchPolicy policy(Options(8, delay));
  AddOk(policy, {.id = 0}, kT0);
  AddOk(policy, {.id = 1}, kT0 + absl::Milliseconds(3));

  BatchPolicy::Decision early = policy.NextBatch(kT0 + delay - absl::Nanoseconds(1));
  EXPECT_THAT(early.batch, IsEmpty());
  ASSERT_TRUE(early.wake_at.has_value());
  EXPECT_EQ(*early.wake_at, kT0 + delay);  // the oldest task's deadline for a fuller batch
  EXPECT_EQ(policy.size(), 2);

  BatchPolicy::Decision ready = policy.NextBatch(kT0 + delay);
  EXPECT_THAT(Ids(ready.batch), ElementsAre(0, 1));
  EXPECT_FALSE(ready.wake_at.has_value());
  EXPECT_EQ(policy.size(), 0);
}

TEST(BatchPolicy, EnqueueTimeIsStamped) {
  BatchPolicy policy(Options(1, absl::ZeroDuration()));
  AddOk(policy, {.id = 0}, kT0 + absl::Seconds(5));
  BatchPolicy::Decision decision = policy.NextBatch(kT0 + absl::Seconds(5));
  ASSERT_EQ(decision.batch.size(), 1u);
  EXPECT_EQ(decision.batch[0]->enqueue_time, kT0 + absl::Seconds(5));
}

TEST(BatchPolicy, WakeAtIsTheEarliestAcrossGroups) {
  BatchPolicy policy(Options(8, absl::Milliseconds(10)));
  AddOk(policy, {.id = 0, .height = 448}, kT0 + absl::Milliseconds(4));
  AddOk(policy, {.id = 1, .height = 224}, kT0 + absl::Milliseconds(7));
  AddOk(policy, {.id = 2, .height = 448}, kT0 + absl::Milliseconds(8));
  BatchPolicy::Decision decision = policy.NextBatch(kT0 + absl::Milliseconds(9));
  EXPECT_THAT(decision.batch, IsEmpty());
  ASSERT_TRUE(decision.wake_at.has_value());
  EXPECT_EQ(*decision.wake_at, kT0 + absl::Milliseconds(14));
}

TEST(BatchPolicy, ZeroDelayDispatchesAtOnce) {
  BatchPolicy policy(Options(8, absl::ZeroDuration()));
  AddOk(policy, {.id = 7}, kT0);
  BatchPolicy::Decision decision = policy.NextBatch(kT0);
  EXPECT_THAT(Ids(decision.batch), ElementsAre(7));
  EXPECT_FALSE(decision.wake_at.has_value());
}

TEST(BatchPolicy, EmptyPolicyHasNothingAndNoWake) {
  BatchPolicy policy(Options(8, absl::Milliseconds(2)));
  BatchPolicy::Decision decision = policy.NextBatch(kT0);
  EXPECT_THAT(decision.batch, IsEmpty());
  EXPECT_THAT(decision.dead, IsEmpty());
  EXPECT_FALSE(decision.wake_at.has_value());
}

TEST(BatchPolicy, FullQueueRejectsWithoutTakingTheTask) {
  BatchingOptions options = Options(8, absl::Seconds(1));
  options.max_queue_size = 2;
  BatchPolicy policy(options);
  AddOk(policy, {.id = 0}, kT0);
  AddOk(policy, {.id = 1, .height = 448}, kT0);  // the bound counts images, not groups

  int calls = 0;
  auto rejected = MakeTask({.id = 2}, &calls);
  absl::Status status = policy.Add(rejected, kT0);
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("max_queue_size"));
  ASSERT_NE(rejected, nullptr);  // still the caller's
  EXPECT_FALSE(rejected->finished());
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(policy.size(), 2);

  // Room again once a batch left.
  EXPECT_THAT(Ids(policy.NextBatch(kT0 + absl::Seconds(1)).batch), ElementsAre(0));
  EXPECT_TRUE(policy.Add(rejected, kT0 + absl::Seconds(1)).ok());
  EXPECT_EQ(rejected, nullptr);
}

TEST(BatchPolicy, CancelledAndExpiredTasksComeBackDeadNeverInABatch) {
  BatchPolicy policy(Options(8, absl::ZeroDuration()));
  bool cancelled = false;
  auto cancellable = MakeTask({.id = 0});
  cancellable->is_cancelled = [&cancelled] { return cancelled; };
  ASSERT_TRUE(policy.Add(cancellable, kT0).ok());
  AddOk(policy, {.id = 1, .deadline = kT0 + absl::Milliseconds(5)}, kT0);  // expires at 5ms
  AddOk(policy, {.id = 2, .deadline = kT0 + absl::Milliseconds(6)}, kT0);  // still alive
  AddOk(policy, {.id = 3}, kT0);

  cancelled = true;  // after it was queued
  BatchPolicy::Decision decision = policy.NextBatch(kT0 + absl::Milliseconds(5));
  EXPECT_THAT(Ids(decision.dead), UnorderedElementsAre(0, 1));
  EXPECT_THAT(Ids(decision.batch), ElementsAre(2, 3));
  for (const auto& task : decision.dead) EXPECT_FALSE(task->finished());  // caller finishes
  EXPECT_EQ(policy.size(), 0);
}

TEST(BatchPolicy, DeadTasksAreDroppedEvenFromGroupsThatAreNotReady) {
  BatchPolicy policy(Options(8, absl::Seconds(1)));
  AddOk(policy, {.id = 0, .deadline = kT0 + absl::Milliseconds(1)}, kT0);
  BatchPolicy::Decision decision = policy.NextBatch(kT0 + absl::Milliseconds(2));
  EXPECT_THAT(Ids(decision.dead), ElementsAre(0));
  EXPECT_THAT(decision.batch, IsEmpty());
  EXPECT_FALSE(decision.wake_at.has_value());  // nothing left to wait for
  EXPECT_EQ(policy.size(), 0);
}

TEST(BatchPolicy, DeadTasksAreNotCountedTowardsAFullBatch) {
  BatchPolicy policy(Options(2, absl::Seconds(1)));
  auto cancelled = MakeTask({.id = 0});
  cancelled->is_cancelled = [] { return true; };
  ASSERT_TRUE(policy.Add(cancelled, kT0).ok());
  AddOk(policy, {.id = 1}, kT0);
  BatchPolicy::Decision decision = policy.NextBatch(kT0);
  EXPECT_THAT(Ids(decision.dead), ElementsAre(0));
  EXPECT_THAT(decision.batch, IsEmpty());  // one live task: not full, waits for the delay
  EXPECT_EQ(policy.size(), 1);
}

// Every batch the policy forms at `now`, as task ids; checks that a batch's tasks share their
// shape, dtype and layer selection.
std::vector<std::vector<int>> DrainBatches(BatchPolicy& policy, absl::Time now) {
  std::vector<std::vector<int>> batches;
  for (BatchPolicy::Decision d = policy.NextBatch(now); !d.batch.empty();
       d = policy.NextBatch(now)) {
    const EmbedTask& first = *d.batch[0];
    for (const auto& task : d.batch) {
      EXPECT_EQ(task->plan.out_height, first.plan.out_height);
      EXPECT_EQ(task->plan.out_width, first.plan.out_width);
      EXPECT_EQ(task->dtype, first.dtype);
      EXPECT_EQ(task->layers.indices, first.layers.indices);
      EXPECT_EQ(task->layers.norm, first.layers.norm);
    }
    batches.push_back(Ids(d.batch));
  }
  return batches;
}

TEST(BatchPolicy, DifferentShapesAndDtypesNeverShareABatch) {
  BatchPolicy policy(Options(8, absl::ZeroDuration()));
  AddOk(policy, {.id = 0, .height = 224, .width = 224}, kT0);
  AddOk(policy, {.id = 1, .height = 224, .width = 448}, kT0 + absl::Milliseconds(1));
  AddOk(policy, {.id = 2, .height = 448, .width = 224}, kT0 + absl::Milliseconds(2));
  AddOk(policy, {.id = 3, .dtype = DType::kFloat16}, kT0 + absl::Milliseconds(3));
  AddOk(policy, {.id = 4, .dtype = DType::kBFloat16}, kT0 + absl::Milliseconds(4));
  AddOk(policy, {.id = 5}, kT0 + absl::Milliseconds(5));
  // Oldest group first; 0 and 5 share shape and dtype.
  EXPECT_THAT(DrainBatches(policy, kT0 + absl::Milliseconds(10)),
              ElementsAre(ElementsAre(0, 5), ElementsAre(1), ElementsAre(2), ElementsAre(3),
                          ElementsAre(4)));
  EXPECT_EQ(policy.size(), 0);
}

TEST(BatchPolicy, DifferentLayerSelectionsNeverShareABatch) {
  BatchPolicy policy(Options(8, absl::ZeroDuration()));
  AddOk(policy, {.id = 0}, kT0);
  AddOk(policy, {.id = 1, .layers = {3, 1}}, kT0 + absl::Milliseconds(1));
  AddOk(policy, {.id = 2, .layers = {1, 3}}, kT0 + absl::Milliseconds(2));
  AddOk(policy, {.id = 3, .layers = {3, 1}, .layer_norm = false}, kT0 + absl::Milliseconds(3));
  AddOk(policy, {.id = 4, .layers = {3, 1}}, kT0 + absl::Milliseconds(4));
  AddOk(policy, {.id = 5}, kT0 + absl::Milliseconds(5));
  // A forward returns one layer set, in its order, with or without the norm.
  EXPECT_THAT(DrainBatches(policy, kT0 + absl::Milliseconds(10)),
              ElementsAre(ElementsAre(0, 5), ElementsAre(1, 4), ElementsAre(2), ElementsAre(3)));
}

TEST(BatchPolicy, GroupWithTheOldestTaskGoesFirst) {
  BatchPolicy policy(Options(1, absl::ZeroDuration()));
  // The older group has the larger map key, so map order alone would serve it last.
  AddOk(policy, {.id = 0, .height = 448}, kT0);
  AddOk(policy, {.id = 1, .height = 224}, kT0 + absl::Milliseconds(1));
  AddOk(policy, {.id = 2, .height = 448}, kT0 + absl::Milliseconds(2));
  AddOk(policy, {.id = 3, .height = 224}, kT0 + absl::Milliseconds(3));
  const absl::Time now = kT0 + absl::Milliseconds(4);
  std::vector<int> order;
  for (int i = 0; i < 4; ++i) {
    BatchPolicy::Decision d = policy.NextBatch(now);
    ASSERT_EQ(d.batch.size(), 1u);
    order.push_back(d.batch[0]->plan.crop_top);
  }
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3));  // alternates: no shape starves
}

TEST(BatchPolicy, ABusyShapeDoesNotStarveAnOlderSingleTask) {
  BatchPolicy policy(Options(2, absl::Milliseconds(10)));
  AddOk(policy, {.id = 0, .height = 448}, kT0);
  // A steady stream of 224 tasks keeps filling batches; once the 448 task waited the delay it
  // is the oldest ready group and goes first.
  for (int id = 1; id <= 4; ++id) AddOk(policy, {.id = id}, kT0 + absl::Milliseconds(id));
  EXPECT_THAT(Ids(policy.NextBatch(kT0 + absl::Milliseconds(5)).batch), ElementsAre(1, 2));
  for (int id = 5; id <= 6; ++id) AddOk(policy, {.id = id}, kT0 + absl::Milliseconds(id));
  EXPECT_THAT(Ids(policy.NextBatch(kT0 + absl::Milliseconds(10)).batch), ElementsAre(0));
  EXPECT_THAT(Ids(policy.NextBatch(kT0 + absl::Milliseconds(10)).batch), ElementsAre(3, 4));
}

TEST(BatchPolicy, HigherPriorityGroupIsServedFirst) {
  BatchPolicy policy(Options(8, absl::ZeroDuration()));
  AddOk(policy, {.id = 0, .height = 224, .priority = 0}, kT0);
  AddOk(policy, {.id = 1, .height = 448, .priority = -1}, kT0 + absl::Milliseconds(1));
  AddOk(policy, {.id = 2, .height = 448, .priority = 1}, kT0 + absl::Milliseconds(2));
  const absl::Time now = kT0 + absl::Milliseconds(3);
  // The 448 group holds the most urgent task, so it goes first although 224's task is older.
  EXPECT_THAT(Ids(policy.NextBatch(now).batch), ElementsAre(2, 1));
  EXPECT_THAT(Ids(policy.NextBatch(now).batch), ElementsAre(0));
}

TEST(BatchPolicy, WithinAGroupHigherPriorityTasksAreTakenFirst) {
  BatchPolicy policy(Options(2, absl::Seconds(1)));
  AddOk(policy, {.id = 0, .priority = 0}, kT0);
  AddOk(policy, {.id = 1, .priority = 1}, kT0 + absl::Milliseconds(1));
  AddOk(policy, {.id = 2, .priority = -1}, kT0 + absl::Milliseconds(2));
  AddOk(policy, {.id = 3, .priority = 1}, kT0 + absl::Milliseconds(3));
  AddOk(policy, {.id = 4, .priority = 0}, kT0 + absl::Milliseconds(4));
  const absl::Time now = kT0 + absl::Milliseconds(5);
  EXPECT_THAT(Ids(policy.NextBatch(now).batch), ElementsAre(1, 3));  // ties: arrival order
  EXPECT_THAT(Ids(policy.NextBatch(now).batch), ElementsAre(0, 4));
  // The low-priority leftover still goes once it waited the delay.
  EXPECT_THAT(policy.NextBatch(now).batch, IsEmpty());
  EXPECT_THAT(Ids(policy.NextBatch(kT0 + absl::Milliseconds(2) + absl::Seconds(1)).batch),
              ElementsAre(2));
}

TEST(BatchPolicy, PreferredSizesCutADelayTriggeredBatch) {
  BatchingOptions options = Options(8, absl::Milliseconds(10));
  options.preferred_batch_sizes = {4, 8};
  BatchPolicy policy(options);
  for (int id = 0; id < 7; ++id) AddOk(policy, {.id = id}, kT0);
  const absl::Time now = kT0 + absl::Milliseconds(10);
  EXPECT_THAT(Ids(policy.NextBatch(now).batch), ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(policy.size(), 3);
  // No preferred size fits 3: the rest goes as it is.
  EXPECT_THAT(Ids(policy.NextBatch(now).batch), ElementsAre(4, 5, 6));
}

TEST(BatchPolicy, PreferredSizesDoNotCutAFullBatch) {
  BatchingOptions options = Options(8, absl::Seconds(1));
  options.preferred_batch_sizes = {4};
  BatchPolicy policy(options);
  for (int id = 0; id < 8; ++id) AddOk(policy, {.id = id}, kT0);
  EXPECT_EQ(policy.NextBatch(kT0).batch.size(), 8u);
}

TEST(BatchPolicy, FlushMakesEveryGroupReadyAndIgnoresPreferredSizes) {
  BatchingOptions options = Options(8, absl::Seconds(1));
  options.preferred_batch_sizes = {4, 8};
  BatchPolicy policy(options);
  for (int id = 0; id < 7; ++id) AddOk(policy, {.id = id}, kT0);
  EXPECT_THAT(policy.NextBatch(kT0).batch, IsEmpty());
  EXPECT_EQ(policy.NextBatch(kT0, /*flush=*/true).batch.size(), 7u);
}

TEST(BatchPolicy, MaxBatchPixelsCapsTheBatch) {
  BatchingOptions options = Options(8, absl::ZeroDuration());
  options.max_batch_pixels = 3 * 224 * 224;
  BatchPolicy policy(options);
  for (int id = 0; id < 5; ++id) AddOk(policy, {.id = id}, kT0);
  EXPECT_THAT(Ids(policy.NextBatch(kT0).batch), ElementsAre(0, 1, 2));
  EXPECT_THAT(Ids(policy.NextBatch(kT0).batch), ElementsAre(3, 4));
}

TEST(BatchPolicy, MaxBatchPixelsStillTakesOneOversizedTask) {
  BatchingOptions options = Options(8, absl::ZeroDuration());
  options.max_batch_pixels = 224 * 224;
  BatchPolicy policy(options);
  AddOk(policy, {.id = 0, .height = 448, .width = 448}, kT0);
  AddOk(policy, {.id = 1, .height = 448, .width = 448}, kT0);
  EXPECT_THAT(Ids(policy.NextBatch(kT0).batch), ElementsAre(0));
  EXPECT_THAT(Ids(policy.NextBatch(kT0).batch), ElementsAre(1));
}

TEST(BatchPolicy, GroupThatFillsMaxBatchPixelsIsReadyBeforeTheDelay) {
  BatchingOptions options = Options(8, absl::Seconds(1));
  options.max_batch_pixels = 2 * 224 * 224;
  BatchPolicy policy(options);
  AddOk(policy, {.id = 0}, kT0);
  EXPECT_THAT(policy.NextBatch(kT0).batch, IsEmpty());
  AddOk(policy, {.id = 1}, kT0);
  EXPECT_THAT(Ids(policy.NextBatch(kT0).batch), ElementsAre(0, 1));
}

TEST(BatchPolicy, TakeAllReturnsEverything) {
  BatchPolicy policy(Options(8, absl::Seconds(1)));
  AddOk(policy, {.id = 0}, kT0);
  AddOk(policy, {.id = 1, .height = 448}, kT0);
  AddOk(policy, {.id = 2, .dtype = DType::kFloat16}, kT0);
  AddOk(policy, {.id = 3}, kT0);
  TaskBatch all = policy.TakeAll();
  EXPECT_THAT(Ids(all), UnorderedElementsAre(0, 1, 2, 3));
  for (const auto& task : all) EXPECT_FALSE(task->finished());
  EXPECT_EQ(policy.size(), 0);
  BatchPolicy::Decision after = policy.NextBatch(kT0 + absl::Seconds(2), /*flush=*/true);
  EXPECT_THAT(after.batch, IsEmpty());
  EXPECT_FALSE(after.wake_at.has_value());
  EXPECT_THAT(policy.TakeAll(), IsEmpty());
}

TEST(ValidateBatchingOptions, DefaultsAreValid) {
  EXPECT_TRUE(ValidateBatchingOptions(BatchingOptions{}).ok());
  BatchingOptions options;
  options.max_queue_delay = absl::ZeroDuration();
  options.preferred_batch_sizes = {1, 4, 8};
  options.max_batch_pixels = 1;
  EXPECT_TRUE(ValidateBatchingOptions(options).ok());
}

TEST(ValidateBatchingOptions, RejectsBadValuesNamingTheField) {
  struct Case {
    std::string field;
    BatchingOptions options;
  };
  std::vector<Case> cases;
  auto add = [&cases](std::string field, auto mutate) {
    BatchingOptions options;
    mutate(options);
    cases.push_back({std::move(field), options});
  };
  add("max_batch_size", [](BatchingOptions& o) { o.max_batch_size = 0; });
  add("max_batch_size", [](BatchingOptions& o) { o.max_batch_size = -3; });
  add("max_queue_size", [](BatchingOptions& o) { o.max_queue_size = 0; });
  add("max_queue_delay", [](BatchingOptions& o) { o.max_queue_delay = -absl::Milliseconds(1); });
  add("max_batch_pixels", [](BatchingOptions& o) { o.max_batch_pixels = -1; });
  add("preferred_batch_sizes", [](BatchingOptions& o) { o.preferred_batch_sizes = {0}; });
  add("preferred_batch_sizes", [](BatchingOptions& o) {
    o.max_batch_size = 8;
    o.preferred_batch_sizes = {4, 16};
  });
  for (const Case& c : cases) {
    absl::Status status = ValidateBatchingOptions(c.options);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(c.field));
  }
}

}  // namespace
}  // namespace dinov3::batching
