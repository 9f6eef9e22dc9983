// ModelWorker with the fixture model on TestDevice(): warm-up, outputs equal to the runtime's
// forward on the same normalised input and delivered to the right task, and failed batches that
// finish every task once and leave the worker serving, with health transitions.
#include "server/engine/model_worker.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <utility>
#include <vector>

#include "server/engine/host_input.h"
#include "server/engine/model_engine.h"
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

// Same TorchScript graph, same LibTorch, same device: only the batch size differs. On a GPU the
// kernels (TF32 convolutions included) may differ with it.
double MaxAbsDiff() { return TestDevice() == "cpu" ? 1e-5 : 5e-3; }

torch::Tensor FromTensorData(const TensorData& data) {
  EXPECT_EQ(data.dtype, DType::kFloat32);
  return torch::from_blob(const_cast<char*>(data.data.data()), data.shape, torch::kFloat32).clone();
}

class ModelWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto runtime = model::ModelRuntime::Load(ModelPath(), TestDevice(), /*probe=*/false);
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    runtime_ = *std::move(runtime);
    WorkerOptions options;
    options.intra_op_threads = 1;
    options.warmup_max_batch_size = 3;
    options.on_health_change = [this](bool healthy) { health_changes_.push_back(healthy); };
    worker_ = std::make_unique<ModelWorker>(runtime_.get(), std::move(options));
    ASSERT_TRUE(worker_->PrepareThread().ok());
  }

  // Runs one batch of `count` images of `plan` and returns how each task was finished.
  std::vector<Outcome> RunBatch(int count, const ResizePlan& plan, uint32_t seed = 1) {
    std::vector<Outcome> outcomes(count);
    batching::TaskBatch batch;
    for (int i = 0; i < count; ++i) {
      batch.push_back(MakeTask(RandomImage(224, 224, seed + i), plan, &outcomes[i]));
    }
    worker_->Run(std::move(batch));
    return outcomes;
  }

  torch::Tensor ExpectedCls(const RgbImage& image, const ResizePlan& plan) {
    const model::ModelMetadata& m = runtime_->metadata();
    const torch::Tensor input =
        ImageToModelInput(image, plan, {m.image_mean, m.image_std}, runtime_->device());
    auto out = runtime_->Forward(input.unsqueeze(0));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->cls[0].cpu() : torch::Tensor();
  }

  std::unique_ptr<model::ModelRuntime> runtime_;
  std::unique_ptr<ModelWorker> worker_;
  std::vector<bool> health_changes_;
};

TEST_F(ModelWorkerTest, EachTaskGetsTheOutputsOfItsOwnImage) {
  const ResizePlan plan = Identity(224, 224);
  const std::vector<Outcome> outcomes = RunBatch(3, plan, /*seed=*/7);
  std::vector<torch::Tensor> cls;
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(outcomes[i].calls, 1);
    ASSERT_TRUE(outcomes[i].result.ok()) << outcomes[i].result.status();
    const EmbeddingResult& r = *outcomes[i].result;
    EXPECT_EQ(r.grid_height, 14);
    EXPECT_EQ(r.grid_width, 14);
    ASSERT_TRUE(r.cls && r.pooled && r.patch_tokens && r.registers);
    EXPECT_THAT(r.cls->shape, ElementsAre(384));
    EXPECT_THAT(r.patch_tokens->shape, ElementsAre(196, 384));
    EXPECT_THAT(r.registers->shape, ElementsAre(4, 384));
    cls.push_back(FromTensorData(*r.cls));
    const torch::Tensor want = ExpectedCls(RandomImage(224, 224, 7 + i), plan);
    EXPECT_LE((cls.back() - want).abs().max().item<double>(), MaxAbsDiff());
    const torch::Tensor pooled = FromTensorData(*r.patch_tokens).mean(0);
    EXPECT_LE((FromTensorData(*r.pooled) - pooled).abs().max().item<double>(), MaxAbsDiff());
  }
  // Different images, different embeddings: an order mix-up could not pass the checks above.
  EXPECT_GT((cls[0] - cls[1]).abs().max().item<double>(), 1e-3);
  EXPECT_GT((cls[1] - cls[2]).abs().max().item<double>(), 1e-3);
  EXPECT_EQ(worker_->consecutive_failures(), 0);
}

TEST_F(ModelWorkerTest, InputsPreparedOnTheHostGiveTheSameBitsAsImages) {
  // The same two images, once as pixels and once with the input the preprocess pool builds
  // (host_input.h), in a batch of one of each: every output is bit-identical.
  const ResizePlan plan{224, 224, 0, 0, 224, 224, Interpolation::kBilinear};
  const model::ModelMetadata& m = runtime_->metadata();
  std::vector<Outcome> from_images(2), prepared(2);
  batching::TaskBatch images, mixed;
  for (int i = 0; i < 2; ++i) {
    images.push_back(MakeTask(RandomImage(300, 200, 11 + i), plan, &from_images[i]));
    mixed.push_back(MakeTask(RandomImage(300, 200, 11 + i), plan, &prepared[i]));
  }
  ASSERT_TRUE(PrepareHostInput(*mixed[1], {m.image_mean, m.image_std}).ok());
  ASSERT_TRUE(mixed[1]->image.pixels.empty());
  worker_->Run(std::move(images));
  worker_->Run(std::move(mixed));
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(from_images[i].result.ok() && prepared[i].result.ok());
    EXPECT_EQ(from_images[i].result->cls->data, prepared[i].result->cls->data);
    EXPECT_EQ(from_images[i].result->patch_tokens->data, prepared[i].result->patch_tokens->data);
    EXPECT_EQ(from_images[i].result->registers->data, prepared[i].result->registers->data);
  }
}

TEST_F(ModelWorkerTest, FailedBatchFinishesEveryTaskOnceAndTheNextBatchWorks) {
  // 200 is not a multiple of the patch size: the runtime rejects the forward.
  const std::vector<Outcome> failed = RunBatch(3, Identity(200, 224));
  for (const Outcome& o : failed) {
    EXPECT_EQ(o.calls, 1);
    EXPECT_TRUE(absl::IsInternal(o.result.status())) << o.result.status();
    EXPECT_THAT(o.result.status().message(), HasSubstr("inference failed"));
  }
  EXPECT_EQ(worker_->consecutive_failures(), 1);
  EXPECT_TRUE(worker_->healthy());

  const std::vector<Outcome> good = RunBatch(2, Identity(224, 224));
  for (const Outcome& o : good) {
    EXPECT_EQ(o.calls, 1);
    EXPECT_TRUE(o.result.ok()) << o.result.status();
  }
  EXPECT_EQ(worker_->consecutive_failures(), 0);
  EXPECT_THAT(health_changes_, IsEmpty());
}

TEST_F(ModelWorkerTest, InputsTheModelCannotTakeNeverMakeTheWorkerUnhealthy) {
  // Batches that fail on every image, kMaxConsecutiveFailures and more in a row: the synthetic
  // probe still succeeds, so the failures are the inputs' and the worker stays healthy.
  for (int i = 0; i < 2 * kMaxConsecutiveFailures; ++i) {
    for (const Outcome& o : RunBatch(2, Identity(200, 224))) {
      EXPECT_TRUE(absl::IsInternal(o.result.status())) << o.result.status();
    }
  }
  EXPECT_THAT(health_changes_, IsEmpty());
  EXPECT_TRUE(worker_->healthy());
  EXPECT_LT(worker_->consecutive_failures(), kMaxConsecutiveFailures);
}

TEST_F(ModelWorkerTest, EmptyBatchIsANoOp) {
  worker_->Run({});
  EXPECT_EQ(worker_->consecutive_failures(), 0);
}

}  // namespace
}  // namespace dinov3::engine
