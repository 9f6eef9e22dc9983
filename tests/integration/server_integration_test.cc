// dinov3-server end to end over gRPC on loopback, checked against the C++ model runtime.
//
// A 224x224 RGB8 image under RESIZE_FIXED 224x224 is not resized, so the served outputs must
// equal ModelRuntime::Forward on ((pixels / 255) - mean) / std, laid out [1, 3, 224, 224].
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cpp/tensor_decode.h"
#include "dinov3/v1/embedding.grpc.pb.h"
#include "model/runtime/model_runtime.h"
#include "tests/integration/test_support.h"

namespace dinov3::integration {
namespace {

using ::testing::HasSubstr;

constexpr int kSide = 224;
constexpr double kFloat32Tolerance = 1e-5;  // same graph and LibTorch; batching may differ
constexpr double kFloat16Tolerance = 1e-2;
constexpr double kBFloat16Tolerance = 4e-2;

// A hang guard, not a duration: the calls here take milliseconds to a second.
void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
}

// The decoded tensor as a float32 torch tensor of the same shape; fails the test if malformed.
torch::Tensor ToTorch(const v1::Tensor& tensor) {
  absl::StatusOr<std::vector<float>> values = client::DecodeTensor(tensor);
  EXPECT_TRUE(values.ok()) << values.status();
  if (!values.ok()) return torch::Tensor();
  std::vector<int64_t> shape(tensor.shape().begin(), tensor.shape().end());
  return torch::from_blob(values->data(), shape, torch::kFloat32).clone();
}

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

v1::EmbedRequest FixedRequest(const RgbImage& image, v1::DType dtype,
                              std::vector<v1::Output> outputs) {
  v1::EmbedRequest request;
  *request.add_images() = ToRawProto(image, "img");
  for (const v1::Output output : outputs) request.add_outputs(output);
  request.set_dtype(dtype);
  request.mutable_preprocess()->set_mode(v1::RESIZE_FIXED);
  request.mutable_preprocess()->set_height(kSide);
  request.mutable_preprocess()->set_width(kSide);
  return request;
}

class EmbeddingServiceTest : public ServerTest {
 protected:
  static void SetUpTestSuite() {
    ServerTest::SetUpTestSuite();
    auto runtime = model::ModelRuntime::Load(ModelPath(), "cpu");
    if (runtime.ok()) {
      runtime_ = *std::move(runtime);
    } else {
      runtime_error_ = runtime.status().ToString();
    }
  }
  static void TearDownTestSuite() {
    runtime_.reset();
    ServerTest::TearDownTestSuite();
  }
  void SetUp() override {
    ServerTest::SetUp();
    if (HasFatalFailure()) return;  // no server: nothing below may touch it
    ASSERT_NE(runtime_, nullptr) << "could not load the model in the test: " << runtime_error_;
    stub_ = NewStub();
  }

  // Pixels of `image` as the normalised [1, 3, H, W] model input.
  static torch::Tensor ModelInput(const RgbImage& image) {
    const model::ModelMetadata& m = runtime_->metadata();
    torch::Tensor pixels = torch::from_blob(const_cast<char*>(image.pixels.data()),
                                            {image.height, image.width, 3}, torch::kUInt8)
                               .permute({2, 0, 1})
                               .unsqueeze(0)
                               .to(torch::kFloat32)
                               .div(255.0);
    torch::Tensor mean = torch::tensor({m.image_mean[0], m.image_mean[1], m.image_mean[2]});
    torch::Tensor std = torch::tensor({m.image_std[0], m.image_std[1], m.image_std[2]});
    return ((pixels - mean.view({1, 3, 1, 1})) / std.view({1, 3, 1, 1})).contiguous();
  }

  v1::EmbedResponse EmbedOk(const v1::EmbedRequest& request) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::EmbedResponse response;
    const grpc::Status status = stub_->Embed(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
    return response;
  }

  grpc::Status EmbedStatus(const v1::EmbedRequest& request) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::EmbedResponse response;
    return stub_->Embed(&context, request, &response);
  }

  static inline std::unique_ptr<model::ModelRuntime> runtime_;
  static inline std::string runtime_error_;
  std::unique_ptr<v1::EmbeddingService::Stub> stub_;
};

TEST_F(EmbeddingServiceTest, EmbedEqualsModelRuntimeForward) {
  const RgbImage image = RandomRgbImage(kSide, kSide, 1);
  v1::EmbedRequest request =
      FixedRequest(image, v1::FLOAT32, {v1::CLS, v1::POOLED, v1::PATCH_TOKENS, v1::REGISTERS});
  request.set_request_id("forward-check");
  const v1::EmbedResponse response = EmbedOk(request);
  ASSERT_EQ(response.embeddings_size(), 1);
  EXPECT_EQ(response.request_id(), "forward-check");
  const v1::Embedding& e = response.embeddings(0);
  EXPECT_EQ(e.id(), "img");
  const model::ModelMetadata& m = runtime_->metadata();
  const int grid = kSide / m.patch_size;
  EXPECT_EQ(e.grid_height(), static_cast<uint32_t>(grid));
  EXPECT_EQ(e.grid_width(), static_cast<uint32_t>(grid));

  auto expected = runtime_->Forward(ModelInput(image));
  ASSERT_TRUE(expected.ok()) << expected.status();
  const torch::Tensor cls = expected->cls[0].to(torch::kCPU, torch::kFloat32);
  const torch::Tensor patches = expected->patch_tokens[0].to(torch::kCPU, torch::kFloat32);
  const torch::Tensor registers = expected->registers[0].to(torch::kCPU, torch::kFloat32);
  const torch::Tensor pooled = patches.mean(0);

  for (const auto& [name, wire, want] :
       {std::tuple{"cls", &e.cls(), cls}, std::tuple{"pooled", &e.pooled(), pooled},
        std::tuple{"patch_tokens", &e.patch_tokens(), patches},
        std::tuple{"registers", &e.registers(), registers}}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(wire->dtype(), v1::FLOAT32);
    const torch::Tensor got = ToTorch(*wire);
    ASSERT_TRUE(got.defined());
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE(MaxAbsDiff(got, want), kFloat32Tolerance);
  }
  EXPECT_EQ(patches.size(0), grid * grid);
  EXPECT_EQ(registers.size(0), m.num_registers);
}

TEST_F(EmbeddingServiceTest, DenseChunksReassembleBitwiseToEmbedPatchTokens) {
  const RgbImage image = RandomRgbImage(kSide, kSide, 2);
  const v1::EmbedResponse embed = EmbedOk(FixedRequest(image, v1::FLOAT32, {v1::PATCH_TOKENS}));
  ASSERT_EQ(embed.embeddings_size(), 1);
  const std::string& want = embed.embeddings(0).patch_tokens().data();

  v1::EmbedDenseRequest request;
  *request.mutable_image() = ToRawProto(image, "img");
  request.set_dtype(v1::FLOAT32);
  request.mutable_preprocess()->set_mode(v1::RESIZE_FIXED);
  request.mutable_preprocess()->set_height(kSide);
  request.mutable_preprocess()->set_width(kSide);
  request.set_request_id("dense-check");
  request.set_rows_per_chunk(4);  // 14 rows: 4 + 4 + 4 + 2
  grpc::ClientContext context;
  SetDeadline(context);
  auto reader = stub_->EmbedDense(&context, request);

  const uint32_t grid = kSide / runtime_->metadata().patch_size;
  const uint32_t dim = runtime_->metadata().embed_dim;
  const size_t row_bytes = size_t{grid} * dim * sizeof(float);
  std::string assembled(row_bytes * grid, '\0');
  std::vector<int> row_count(grid, 0);
  int chunks = 0;
  v1::DenseChunk chunk;
  while (reader->Read(&chunk)) {
    SCOPED_TRACE(absl::StrCat("chunk at row ", chunk.row_start()));
    ++chunks;
    ASSERT_EQ(chunk.grid_height(), grid);
    ASSERT_EQ(chunk.grid_width(), grid);
    ASSERT_EQ(chunk.dim(), dim);
    ASSERT_EQ(chunk.dtype(), v1::FLOAT32);
    EXPECT_EQ(chunk.request_id(), "dense-check");
    ASSERT_EQ(chunk.rows().shape_size(), 3);
    const int64_t rows = chunk.rows().shape(0);
    ASSERT_EQ(chunk.rows().shape(1), grid);
    ASSERT_EQ(chunk.rows().shape(2), dim);
    ASSERT_LE(chunk.row_start() + rows, grid);
    ASSERT_EQ(chunk.rows().data().size(), rows * row_bytes);
    EXPECT_LE(rows, 4);
    assembled.replace(chunk.row_start() * row_bytes, rows * row_bytes, chunk.rows().data());
    for (int64_t r = 0; r < rows; ++r) ++row_count[chunk.row_start() + r];
  }
  const grpc::Status status = reader->Finish();
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_GE(chunks, 4);
  for (uint32_t r = 0; r < grid; ++r) EXPECT_EQ(row_count[r], 1) << "patch row " << r;
  ASSERT_EQ(assembled.size(), want.size());
  EXPECT_TRUE(assembled == want) << "dense rows differ from Embed's patch_tokens";
}

TEST_F(EmbeddingServiceTest, HalfPrecisionOutputsDecodeCloseToFloat32) {
  const RgbImage image = RandomRgbImage(kSide, kSide, 3);
  const std::vector<v1::Output> outputs = {v1::CLS, v1::POOLED, v1::PATCH_TOKENS};
  const v1::EmbedResponse f32 = EmbedOk(FixedRequest(image, v1::FLOAT32, outputs));
  ASSERT_EQ(f32.embeddings_size(), 1);
  for (const auto& [dtype, tolerance] :
       {std::pair{v1::FLOAT16, kFloat16Tolerance}, std::pair{v1::BFLOAT16, kBFloat16Tolerance}}) {
    SCOPED_TRACE(client::DTypeName(dtype));
    const v1::EmbedResponse half = EmbedOk(FixedRequest(image, dtype, outputs));
    ASSERT_EQ(half.embeddings_size(), 1);
    const v1::Embedding& a = half.embeddings(0);
    const v1::Embedding& b = f32.embeddings(0);
    for (const auto& [name, got, want] :
         {std::tuple{"cls", &a.cls(), &b.cls()}, std::tuple{"pooled", &a.pooled(), &b.pooled()},
          std::tuple{"patch_tokens", &a.patch_tokens(), &b.patch_tokens()}}) {
      SCOPED_TRACE(name);
      EXPECT_EQ(got->dtype(), dtype);
      EXPECT_EQ(got->data().size() * 2, want->data().size());
      const torch::Tensor got_values = ToTorch(*got);
      const torch::Tensor want_values = ToTorch(*want);
      ASSERT_TRUE(got_values.defined() && want_values.defined());
      ASSERT_EQ(got_values.sizes(), want_values.sizes());
      EXPECT_LE(MaxAbsDiff(got_values, want_values), tolerance);
    }
  }
}

TEST_F(EmbeddingServiceTest, L2NormalizeGivesUnitVectors) {
  const RgbImage image = RandomRgbImage(kSide, kSide, 4);
  v1::EmbedRequest request = FixedRequest(image, v1::FLOAT32, {v1::CLS, v1::PATCH_TOKENS});
  request.set_l2_normalize(true);
  const v1::EmbedResponse response = EmbedOk(request);
  ASSERT_EQ(response.embeddings_size(), 1);
  const torch::Tensor cls = ToTorch(response.embeddings(0).cls());
  const torch::Tensor patches = ToTorch(response.embeddings(0).patch_tokens());
  ASSERT_TRUE(cls.defined() && patches.defined());
  EXPECT_NEAR(cls.norm().item<double>(), 1.0, 1e-5);
  EXPECT_LE(MaxAbsDiff(patches.norm(2, {1}), torch::ones({patches.size(0)})), 1e-5);
}

TEST_F(EmbeddingServiceTest, StreamEmbedAnswersEveryRequest) {
  grpc::ClientContext context;
  SetDeadline(context);
  auto stream = stub_->StreamEmbed(&context);
  std::set<std::string> sent;
  for (int i = 0; i < 3; ++i) {
    v1::EmbedRequest request = FixedRequest(RandomRgbImage(kSide, kSide, 10 + i), v1::FLOAT32, {});
    request.set_request_id(absl::StrCat("stream-", i));
    sent.insert(request.request_id());
    ASSERT_TRUE(stream->Write(request)) << "stream closed at request " << i;
  }
  ASSERT_TRUE(stream->WritesDone());
  std::multiset<std::string> received;
  v1::EmbedResponse response;
  while (stream->Read(&response)) {
    SCOPED_TRACE(response.request_id());
    received.insert(response.request_id());
    EXPECT_FALSE(response.has_error()) << response.error().message();
    ASSERT_EQ(response.embeddings_size(), 1);
    EXPECT_TRUE(response.embeddings(0).has_cls());  // default outputs: cls + pooled
    EXPECT_TRUE(response.embeddings(0).has_pooled());
  }
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  EXPECT_EQ(received, std::multiset<std::string>(sent.begin(), sent.end()));
}

TEST_F(EmbeddingServiceTest, GetModelInfoMatchesRuntimeMetadata) {
  grpc::ClientContext context;
  SetDeadline(context);
  v1::ModelInfo info;
  const grpc::Status status = stub_->GetModelInfo(&context, v1::GetModelInfoRequest(), &info);
  ASSERT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
  const model::ModelMetadata& m = runtime_->metadata();
  EXPECT_EQ(info.variant(), m.variant);
  EXPECT_EQ(info.embed_dim(), static_cast<uint32_t>(m.embed_dim));
  EXPECT_EQ(info.patch_size(), static_cast<uint32_t>(m.patch_size));
  EXPECT_EQ(info.num_registers(), static_cast<uint32_t>(m.num_registers));
  EXPECT_EQ(info.depth(), static_cast<uint32_t>(m.depth));
  EXPECT_EQ(info.num_heads(), static_cast<uint32_t>(m.num_heads));
  EXPECT_EQ(info.default_height(), static_cast<uint32_t>(m.default_height));
  EXPECT_EQ(info.default_width(), static_cast<uint32_t>(m.default_width));
  ASSERT_EQ(info.image_mean_size(), 3);
  ASSERT_EQ(info.image_std_size(), 3);
  for (int c = 0; c < 3; ++c) {
    EXPECT_FLOAT_EQ(info.image_mean(c), m.image_mean[c]);
    EXPECT_FLOAT_EQ(info.image_std(c), m.image_std[c]);
  }
  EXPECT_EQ(info.model_dtype(), m.dtype);
  EXPECT_EQ(info.untrained(), m.untrained);
  EXPECT_EQ(info.weights_sha256(), m.weights_sha256);
  EXPECT_EQ(info.weights_dataset(), m.weights_dataset);
  EXPECT_THAT(info.device(), HasSubstr("cpu"));
  EXPECT_THAT(info.dtypes(), ::testing::Contains(v1::FLOAT32));
  EXPECT_GT(info.limits().max_images_per_request(), 0u);
}

TEST_F(EmbeddingServiceTest, InvalidRequestsAreRejectedAndServerStaysUsable) {
  {
    SCOPED_TRACE("empty request");
    const grpc::Status status = EmbedStatus(v1::EmbedRequest());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  }
  {
    SCOPED_TRACE("random bytes");
    v1::EmbedRequest request;
    std::string noise = RandomRgbImage(64, 64, 5).pixels;
    request.add_images()->set_encoded(noise);
    const grpc::Status status = EmbedStatus(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("image[0]"));
  }
  {
    SCOPED_TRACE("300 images");
    v1::EmbedRequest request;
    const v1::Image small = ToRawProto(RandomRgbImage(16, 16, 6), "small");
    for (int i = 0; i < 300; ++i) *request.add_images() = small;
    const grpc::Status status = EmbedStatus(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  }
  const v1::EmbedResponse response =
      EmbedOk(FixedRequest(RandomRgbImage(kSide, kSide, 7), v1::FLOAT32, {v1::CLS}));
  ASSERT_EQ(response.embeddings_size(), 1);
  EXPECT_TRUE(response.embeddings(0).has_cls());
}

}  // namespace
}  // namespace dinov3::integration
