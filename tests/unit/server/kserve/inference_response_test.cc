// The response half of the Open Inference Protocol mapping: per-image embeddings stacked into
// [N, ...] output tensors in the requested dtypes, and the model metadata.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "server/kserve/float_convert.h"
#include "server/kserve/inference_tensors.h"

namespace dinov3::kserve {
namespace {

std::string Floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

using pipeline::OutputKind;

TensorData Tensor(std::vector<int64_t> shape, const std::vector<float>& values) {
  return TensorData{DType::kFloat32, std::move(shape), Floats(values), {}};
}

// Two images, D = 2, P = 3 (a 1 x 3 grid).
pipeline::EmbedResult TwoImages() {
  pipeline::EmbedResult r;
  r.model_name = "m";
  r.request_id = "id-7";
  for (int i = 0; i < 2; ++i) {
    EmbeddingResult e;
    const float base = 10.0f * static_cast<float>(i);
    e.cls = Tensor({2}, {base + 1, base + 2});
    e.pooled = Tensor({2}, {base + 3, base + 4});
    e.patch_tokens = Tensor({3, 2}, {base, base, base, base, base, base + 0.1f});
    e.grid_height = 1;
    e.grid_width = 3;
    r.embeddings.push_back({"", std::move(e)});
  }
  return r;
}

TEST(InferenceResponseTest, StacksImagesInTheRequestedOrder) {
  OutputPlan plan;
  plan.entries = {{OutputKind::kPooled, DType::kFloat32}, {OutputKind::kCls, DType::kFloat32}};
  absl::StatusOr<InferenceResponse> out = ToInferenceResponse(TwoImages(), plan);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model_name, "m");
  EXPECT_EQ(out->model_version, "1");
  EXPECT_EQ(out->id, "id-7");
  ASSERT_EQ(out->outputs.size(), 2u);
  EXPECT_EQ(out->outputs[0].name, "POOLED");
  EXPECT_EQ(out->outputs[0].datatype, "FP32");
  EXPECT_THAT(out->outputs[0].shape, ::testing::ElementsAre(2, 2));
  EXPECT_EQ(out->outputs[0].data, Floats({3, 4, 13, 14}));
  EXPECT_EQ(out->outputs[1].name, "CLS");
  EXPECT_EQ(out->outputs[1].data, Floats({1, 2, 11, 12}));
}

TEST(InferenceResponseTest, PatchTokensCarryTheirGrid) {
  OutputPlan plan;
  plan.entries = {{OutputKind::kPatchTokens, DType::kFloat32}};
  absl::StatusOr<InferenceResponse> out = ToInferenceResponse(TwoImages(), plan);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->outputs[0].shape, ::testing::ElementsAre(2, 3, 2));
  EXPECT_EQ(out->outputs[0].data.size(), 2u * 3 * 2 * 4);
  EXPECT_EQ(std::get<int64_t>(out->outputs[0].parameters.at("grid_height")), 1);
  EXPECT_EQ(std::get<int64_t>(out->outputs[0].parameters.at("grid_width")), 3);
}

TEST(InferenceResponseTest, MixedDtypesAreConvertedFromFloat32) {
  OutputPlan plan;
  plan.entries = {{OutputKind::kCls, DType::kFloat16}, {OutputKind::kPooled, DType::kBFloat16}};
  plan.run_dtype = DType::kFloat32;
  absl::StatusOr<InferenceResponse> out = ToInferenceResponse(TwoImages(), plan);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->outputs[0].datatype, "FP16");
  std::string fp16;
  AppendConverted(Floats({1, 2, 11, 12}), DType::kFloat16, &fp16);
  EXPECT_EQ(out->outputs[0].data, fp16);
  EXPECT_EQ(out->outputs[1].datatype, "BF16");
  std::string bf16;
  AppendConverted(Floats({3, 4, 13, 14}), DType::kBFloat16, &bf16);
  EXPECT_EQ(out->outputs[1].data, bf16);
}

TEST(InferenceResponseTest, SixteenBitRunsPassThrough) {
  pipeline::EmbedResult r;
  EmbeddingResult e;
  const std::string values = "abcdef" + std::string(58, 'x');  // 32 values, beyond SSO
  e.cls = TensorData{DType::kFloat16, {32}, values, {}};
  const char* const bytes = e.cls->data.data();
  r.embeddings.push_back({"", std::move(e)});
  OutputPlan plan;
  plan.entries = {{OutputKind::kCls, DType::kFloat16}};
  plan.run_dtype = DType::kFloat16;
  absl::StatusOr<InferenceResponse> out = ToInferenceResponse(std::move(r), plan);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->outputs[0].shape, ::testing::ElementsAre(1, 32));
  EXPECT_EQ(out->outputs[0].data, values);
  EXPECT_EQ(out->outputs[0].data.data(), bytes);  // one image in its dtype: moved, not copied
}

TEST(InferenceResponseTest, MissingOrInconsistentTensorsAreInternal) {
  OutputPlan plan;
  plan.entries = {{OutputKind::kRegisters, DType::kFloat32}};
  EXPECT_EQ(ToInferenceResponse(TwoImages(), plan).status().code(), absl::StatusCode::kInternal);
  pipeline::EmbedResult uneven = TwoImages();
  uneven.embeddings[1].result.patch_tokens->shape[0] = 4;
  plan.entries = {{OutputKind::kPatchTokens, DType::kFloat32}};
  EXPECT_EQ(ToInferenceResponse(std::move(uneven), plan).status().code(),
            absl::StatusCode::kInternal);
}

TEST(InferenceResponseTest, ModelMetadataDescribesTheTensors) {
  registry::ModelDescription description;
  description.metadata.embed_dim = 384;
  description.metadata.num_registers = 4;
  const ModelMetadata m = MakeModelMetadata("small", description);
  EXPECT_EQ(m.name, "small");
  EXPECT_THAT(m.versions, ::testing::ElementsAre("1"));
  EXPECT_EQ(m.platform, "pytorch_libtorch");
  ASSERT_EQ(m.inputs.size(), 2u);
  EXPECT_EQ(m.inputs[0].name, "IMAGE");
  EXPECT_EQ(m.inputs[0].datatype, "BYTES");
  EXPECT_THAT(m.inputs[1].shape, ::testing::ElementsAre(-1, -1, -1, 3));
  ASSERT_EQ(m.outputs.size(), 4u);
  EXPECT_THAT(m.outputs[0].shape, ::testing::ElementsAre(-1, 384));
  EXPECT_THAT(m.outputs[2].shape, ::testing::ElementsAre(-1, -1, 384));
  EXPECT_EQ(m.outputs[3].name, "REGISTERS");
  EXPECT_THAT(m.outputs[3].shape, ::testing::ElementsAre(-1, 4, 384));
}

}  // namespace
}  // namespace dinov3::kserve
