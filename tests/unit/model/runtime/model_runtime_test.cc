// ModelRuntime against fixtures written by make_fixtures.py (DINOV3_RUNTIME_FIXTURES names the
// folder): C++ outputs equal the Python TorchScript outputs, and broken archives are rejected
// with messages that say what is wrong.
#include "model/runtime/model_runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace dinov3::model {
namespace {

using ::testing::HasSubstr;

// Same TorchScript graph, same LibTorch, same CPU: only thread scheduling may differ.
constexpr double kMaxAbsDiff = 1e-5;

std::string Fixture(const std::string& name) {
  const char* dir = std::getenv("DINOV3_RUNTIME_FIXTURES");
  return std::string(dir ? dir : "runtime_fixtures") + "/" + name;
}

torch::Tensor Expected(torch::jit::Module& container, const std::string& name) {
  return container.attr(name).toTensor();
}

class ModelRuntimeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelRuntimeTest, MatchesPythonOutputs) {
  auto runtime = ModelRuntime::Load(Fixture("model.pt"));
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  torch::jit::Module expected = torch::jit::load(Fixture("expected.pt"));
  const std::string c = GetParam();
  auto out = (*runtime)->Forward(Expected(expected, c + "_input"));
  ASSERT_TRUE(out.ok()) << out.status();
  for (auto [name, tensor] : {std::pair{"cls", out->cls},
                              {"registers", out->registers},
                              {"patch_tokens", out->patch_tokens}}) {
    torch::Tensor want = Expected(expected, c + "_" + name);
    ASSERT_EQ(tensor.sizes(), want.sizes()) << name;
    const double diff = (tensor - want).abs().max().item<double>();
    EXPECT_LE(diff, kMaxAbsDiff) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(TwoResolutions, ModelRuntimeTest, ::testing::Values("a", "b"));

TEST(ModelRuntimeLoad, ReadsMetadata) {
  auto runtime = ModelRuntime::Load(Fixture("model.pt"));
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  const ModelMetadata& m = (*runtime)->metadata();
  EXPECT_EQ(m.variant, "vits16");
  EXPECT_EQ(m.depth, 2);
  EXPECT_EQ(m.embed_dim, 384);
  EXPECT_EQ(m.num_registers, 4);
  EXPECT_TRUE(m.untrained);
  EXPECT_TRUE((*runtime)->device().is_cpu());
}

TEST(ModelRuntimeLoad, MissingFileIsNotFound) {
  auto runtime = ModelRuntime::Load(Fixture("no_such_model.pt"));
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(runtime.status().message(), HasSubstr("does not exist"));
}

TEST(ModelRuntimeLoad, CorruptFileIsRejected) {
  const std::string path = ::testing::TempDir() + "/corrupt.pt";
  {
    std::ifstream in(Fixture("model.pt"), std::ios::binary);
    std::string head(4096, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(path, std::ios::binary) << head;  // a truncated archive
  }
  auto runtime = ModelRuntime::Load(path);
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runtime.status().message(), HasSubstr("not a loadable TorchScript archive"));
}

TEST(ModelRuntimeLoad, NonDinov3ArchiveIsRejected) {
  auto runtime = ModelRuntime::Load(Fixture("not_dinov3.pt"));
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runtime.status().message(), HasSubstr("not a DINOv3 export"));
}

TEST(ModelRuntimeLoad, MetadataShapeMismatchIsRejected) {
  auto runtime = ModelRuntime::Load(Fixture("mismatched.pt"));
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(runtime.status().message(), HasSubstr("does not match the metadata"));
}

TEST(ModelRuntimeLoad, IncompleteMetadataNamesTheField) {
  auto runtime = ModelRuntime::Load(Fixture("bad_metadata.pt"));
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runtime.status().message(), HasSubstr("field 'variant' is missing"));
}

TEST(ModelRuntimeLoad, UnknownDeviceIsRejected) {
  auto runtime = ModelRuntime::Load(Fixture("model.pt"), "tpu:0");
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kInvalidArgument);
}

// model.compute_dtype: a float32 export converted to bfloat16 at load time computes exactly what
// a bfloat16 export of the same weights computes (the RoPE periods stay float32 in both), and a
// bfloat16 export can compute in float32.
TEST(ModelRuntimeComputeDtype, ConvertedModuleEqualsAnExportInThatDtype) {
  auto converted = ModelRuntime::Load(Fixture("model.pt"), "cpu", true, "bfloat16");
  ASSERT_TRUE(converted.ok()) << converted.status();
  auto exported = ModelRuntime::Load(Fixture("model_bf16.pt"));
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ((*converted)->metadata().dtype, "float32");
  EXPECT_EQ((*converted)->metadata().compute_dtype, "bfloat16");
  EXPECT_THAT(DescribeModel((*converted)->metadata()),
              HasSubstr("dtype=bfloat16 (export float32)"));
  EXPECT_EQ((*exported)->metadata().compute_dtype, "bfloat16");

  const torch::Tensor pixels = torch::randn({2, 3, 64, 48});
  auto a = (*converted)->Forward(pixels);
  auto b = (*exported)->Forward(pixels);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->patch_tokens.scalar_type(), torch::kBFloat16);
  for (auto [x, y] : {std::pair{a->cls, b->cls},
                      {a->registers, b->registers},
                      {a->patch_tokens, b->patch_tokens}}) {
    EXPECT_TRUE(torch::equal(x, y));
  }
}

TEST(ModelRuntimeComputeDtype, Bfloat16ExportComputesInFloat32) {
  auto runtime = ModelRuntime::Load(Fixture("model_bf16.pt"), "cpu", true, "float32");
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  EXPECT_EQ((*runtime)->metadata().compute_dtype, "float32");
  auto out = (*runtime)->Forward(torch::randn({1, 3, 32, 32}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->cls.scalar_type(), torch::kFloat32);
}

TEST(ModelRuntimeComputeDtype, UnknownDtypeIsRejected) {
  auto runtime = ModelRuntime::Load(Fixture("model.pt"), "cpu", true, "int4");
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(runtime.status().message(), HasSubstr("compute dtype 'int4'"));
}

// An int8 export (dynamically quantised Linear layers, the rest float32) answers in float32,
// close to the float32 export of the same weights, and takes no compute dtype.
TEST(ModelRuntimeInt8, ComputesAsExportedCloseToFloat32) {
  auto int8 = ModelRuntime::Load(Fixture("model_int8.pt"));
  ASSERT_TRUE(int8.ok()) << int8.status();
  auto f32 = ModelRuntime::Load(Fixture("model.pt"));
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ((*int8)->metadata().dtype, "int8");
  EXPECT_EQ((*int8)->metadata().compute_dtype, "int8");
  EXPECT_THAT(DescribeModel((*int8)->metadata()), HasSubstr("dtype=int8 "));

  const torch::Tensor pixels = torch::randn({2, 3, 64, 48});
  auto a = (*int8)->Forward(pixels);
  auto b = (*f32)->Forward(pixels);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ(a->patch_tokens.scalar_type(), torch::kFloat32);
  EXPECT_FALSE(torch::equal(a->cls, b->cls));  // the Linear layers did run in int8
  const torch::Tensor cosine =
      torch::cosine_similarity(a->patch_tokens.flatten(0, 1), b->patch_tokens.flatten(0, 1), 1);
  EXPECT_GT(cosine.min().item<double>(), 0.99);
}

TEST(ModelRuntimeInt8, RejectsAComputeDtypeAndNamesTheFix) {
  for (const char* dtype : {"float32", "bfloat16"}) {
    auto runtime = ModelRuntime::Load(Fixture("model_int8.pt"), "cpu", true, dtype);
    EXPECT_EQ(runtime.status().code(), absl::StatusCode::kInvalidArgument) << dtype;
    EXPECT_THAT(runtime.status().message(), HasSubstr("is an int8 export"));
    EXPECT_THAT(runtime.status().message(), HasSubstr(absl::StrCat("--dtype ", dtype)));
  }
}

TEST(ModelRuntimeLoad, ReadMetadataReadsTheArchiveWithoutLoadingIt) {
  auto metadata = ModelRuntime::ReadMetadata(Fixture("model_int8.pt"));
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->dtype, "int8");
  EXPECT_EQ(metadata->variant, "vits16");
  EXPECT_EQ(ModelRuntime::ReadMetadata(Fixture("missing.pt")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(ModelRuntime::ReadMetadata(Fixture("not_dinov3.pt")).status().message(),
              HasSubstr("not a DINOv3 export"));
}

TEST(ModelRuntimeForward, RejectsInputsThatBreakTheContract) {
  auto runtime = ModelRuntime::Load(Fixture("model.pt"));
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  for (const torch::Tensor& bad :
       {torch::zeros({1, 3, 20, 16}), torch::zeros({1, 1, 16, 16}), torch::zeros({3, 16, 16}),
        torch::zeros({1, 3, 16, 16}, torch::kInt64), torch::zeros({0, 3, 16, 16})}) {
    auto out = (*runtime)->Forward(bad);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << bad.sizes();
  }
}

TEST(ModelRuntimeForward, LayersComeFromForwardLayersBesideTheFinalOutputs) {
  auto runtime = ModelRuntime::Load(Fixture("model.pt"));
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  ASSERT_TRUE((*runtime)->metadata().has_forward_layers);
  torch::manual_seed(4);
  const torch::Tensor pixels = torch::randn({2, 3, 32, 48});
  auto plain = (*runtime)->Forward(pixels);
  auto normed = (*runtime)->Forward(pixels, std::vector<int>{1, 0}, /*layer_norm=*/true);
  auto raw = (*runtime)->Forward(pixels, std::vector<int>{1}, /*layer_norm=*/false);
  ASSERT_TRUE(plain.ok() && normed.ok() && raw.ok()) << normed.status() << raw.status();
  EXPECT_TRUE(torch::equal(normed->cls, plain->cls));
  EXPECT_TRUE(torch::equal(normed->patch_tokens, plain->patch_tokens));
  EXPECT_FALSE(plain->layer_cls.defined());
  ASSERT_EQ(normed->layer_patch_tokens.sizes(), (std::vector<int64_t>{2, 2, 6, 384}));
  ASSERT_EQ(normed->layer_registers.sizes(), (std::vector<int64_t>{2, 2, 4, 384}));
  // The fixture has 2 blocks: block 1 through the final norm is the final output; without the
  // norm it is not; block 0 differs from block 1.
  EXPECT_LE((normed->layer_cls.select(1, 0) - plain->cls).abs().max().item<double>(), 1e-6);
  EXPECT_GT((raw->layer_cls.select(1, 0) - plain->cls).abs().max().item<double>(), 1e-2);
  EXPECT_GT((normed->layer_cls.select(1, 1) - plain->cls).abs().max().item<double>(), 1e-2);
}

TEST(ModelRuntimeForward, LayersOutsideTheModelAreRejected) {
  auto runtime = ModelRuntime::Load(Fixture("model.pt"));
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  for (const int layer : {2, -1}) {
    auto out = (*runtime)->Forward(torch::zeros({1, 3, 16, 16}), std::vector<int>{layer});
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << layer;
    EXPECT_THAT(out.status().message(), HasSubstr("outside the model's blocks 0..1"));
  }
}

}  // namespace
}  // namespace dinov3::model
