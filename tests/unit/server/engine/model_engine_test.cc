// ModelEngine::Load with the fixture model: instances, option validation, the summary
// and the engine-wide health callback (HealthAggregator).
#include "server/engine/model_engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "server/engine/health_aggregator.h"
#include "tests/unit/server/engine/engine_test_util.h"

namespace dinov3::engine {
namespace {

using test_util::Identity;
using test_util::MakeTask;
using test_util::ModelPath;
using test_util::Outcome;
using test_util::RandomImage;
using test_util::TestDevice;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

EngineOptions Options(int instances) {
  EngineOptions options;
  options.devices = {TestDevice()};
  options.instances_per_device = instances;
  options.intra_op_threads = 1;
  options.warmup_max_batch_size = 2;
  return options;
}

// Runs one single-image batch on `runner`; returns whether it succeeded.
bool RunOne(batching::BatchRunner* runner, int out_height) {
  Outcome outcome;
  batching::TaskBatch batch;
  batch.push_back(MakeTask(RandomImage(224, 224, 1), Identity(out_height, 224), &outcome));
  runner->Run(std::move(batch));
  EXPECT_EQ(outcome.calls, 1);
  return outcome.result.ok();
}

TEST(ModelEngineTest, LoadsOneRunnerPerInstance) {
  auto engine = ModelEngine::Load(ModelPath(), Options(2));
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<batching::BatchRunner*> runners = (*engine)->runners();
  ASSERT_EQ(runners.size(), 2u);
  EXPECT_NE(runners[0], runners[1]);
  EXPECT_EQ((*engine)->metadata().variant, "vits16");
  EXPECT_THAT((*engine)->Describe(), HasSubstr(TestDevice() + " x2"));
  if (TestDevice() == "cpu") {
    EXPECT_THAT((*engine)->Describe(), HasSubstr("intra-op threads 1"));
  }
  for (batching::BatchRunner* runner : runners) {
    ASSERT_TRUE(runner->PrepareThread().ok());
    EXPECT_TRUE(RunOne(runner, 224));
  }
}

TEST(ModelEngineTest, OnlyCpuEnginesPrepareInputsOnTheHost) {
  auto engine = ModelEngine::Load(ModelPath(), Options(1));
  ASSERT_TRUE(engine.ok()) << engine.status();
  EXPECT_EQ((*engine)->PreparesInputOnHost(), TestDevice() == "cpu");
  batching::EmbedTask task;
  task.image = RandomImage(320, 240, 3);
  task.plan = Identity(224, 224);
  ASSERT_TRUE((*engine)->PrepareInput(task).ok());
  EXPECT_EQ(task.input.size(), size_t{3} * 224 * 224);
  EXPECT_TRUE(task.image.pixels.empty());
}

TEST(ModelEngineTest, RejectsBadOptions) {
  EngineOptions no_instances = Options(0);
  EngineOptions no_devices = Options(1);
  no_devices.devices.clear();
  EngineOptions tpu = Options(1);
  tpu.devices = {"tpu"};
  EngineOptions no_warmup = Options(1);
  no_warmup.warmup_max_batch_size = 0;
  EngineOptions negative_threads = Options(1);
  negative_threads.intra_op_threads = -1;
  for (const EngineOptions& options :
       {no_instances, no_devices, tpu, no_warmup, negative_threads}) {
    auto engine = ModelEngine::Load(ModelPath(), options);
    EXPECT_TRUE(absl::IsInvalidArgument(engine.status())) << engine.status();
  }
  EXPECT_THAT(ModelEngine::Load(ModelPath(), tpu).status().message(), HasSubstr("tpu"));
}

TEST(ModelEngineTest, MissingModelIsNotFound) {
  auto engine = ModelEngine::Load(ModelPath() + ".missing", Options(1));
  EXPECT_TRUE(absl::IsNotFound(engine.status())) << engine.status();
}

TEST(ModelEngineTest, InputsTheModelCannotTakeNeverMakeItUnhealthy) {
  std::vector<bool> changes;
  EngineOptions options = Options(2);
  options.on_health_change = [&changes](bool healthy) { changes.push_back(healthy); };
  auto engine = ModelEngine::Load(ModelPath(), options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  const std::vector<batching::BatchRunner*> runners = (*engine)->runners();
  for (batching::BatchRunner* runner : runners) ASSERT_TRUE(runner->PrepareThread().ok());
  // Every batch fails (200 is not a multiple of the patch size), on both instances, more than
  // kMaxConsecutiveFailures times in a row; the synthetic probe passes, so no health change.
  for (int i = 0; i < 2 * kMaxConsecutiveFailures; ++i) {
    for (batching::BatchRunner* runner : runners) EXPECT_FALSE(RunOne(runner, 200));
  }
  EXPECT_THAT(changes, IsEmpty());
  for (batching::BatchRunner* runner : runners) EXPECT_TRUE(RunOne(runner, 224));
  EXPECT_THAT(changes, IsEmpty());
}

TEST(HealthAggregatorTest, UnhealthyWhileAnyInstanceIs) {
  std::vector<bool> changes;
  HealthAggregator health([&changes](bool healthy) { changes.push_back(healthy); });
  EXPECT_TRUE(health.enabled());
  health.Report(false);  // instance 0
  EXPECT_THAT(changes, ElementsAre(false));
  health.Report(false);  // instance 1
  EXPECT_THAT(changes, ElementsAre(false));
  health.Report(true);  // instance 0 recovers; 1 is still unhealthy
  EXPECT_THAT(changes, ElementsAre(false));
  health.Report(true);
  EXPECT_THAT(changes, ElementsAre(false, true));
  health.Report(false);
  EXPECT_THAT(changes, ElementsAre(false, true, false));
  EXPECT_FALSE(HealthAggregator(nullptr).enabled());
}

TEST(ModelEngineTest, NoCallbackNoCalls) {
  auto engine = ModelEngine::Load(ModelPath(), Options(1));
  ASSERT_TRUE(engine.ok()) << engine.status();
  batching::BatchRunner* runner = (*engine)->runners().at(0);
  ASSERT_TRUE(runner->PrepareThread().ok());
  for (int i = 0; i <= kMaxConsecutiveFailures; ++i) EXPECT_FALSE(RunOne(runner, 200));
  EXPECT_TRUE(RunOne(runner, 224));
}

}  // namespace
}  // namespace dinov3::engine
