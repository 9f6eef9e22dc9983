// The memory footprint of a job (server/pipeline/request_footprint.h): each term from the
// images' sizes, the model's shape and the outputs, and the answer's size as the front door
// states it (AnswerSize), with the description error messages quote.
#include "server/pipeline/request_footprint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "server/common/status_reason.h"

namespace dinov3::pipeline {
namespace {

using ::testing::HasSubstr;

RequestLimits Limits() {
  RequestLimits limits;
  limits.model = {.embed_dim = 384, .num_registers = 4};
  return limits;  // the default geometry: 224x224 at patch 16, 196 patches
}

// One gray 448x224 raw image (resized to 224x224), CLS and patch tokens in float16.
EmbedJob GrayJob(std::shared_ptr<const std::string> pixels) {
  EmbedJob job;
  job.images.push_back(
      RawJobImage(*pixels, RawPixels{448, 224, preprocess::RawPixelFormat::kGray8}, "img"));
  job.owner = std::move(pixels);
  job.settings.outputs = {.cls = true, .patch_tokens = true};
  job.settings.dtype = DType::kFloat16;
  job.request_id = "req";
  job.received_bytes = 448 * 224 + 100;
  return job;
}

constexpr int64_t kTensorBytes = (1 + 196) * 384 * 2;            // CLS + patch tokens, 2 bytes each
constexpr int64_t kOtherBytes = kResponseBytesPerImage + 3 + 3;  // + image id + request id

TEST(RequestFootprintTest, EachTermFollowsTheImagesTheModelAndTheOutputs) {
  const auto pixels = std::make_shared<const std::string>(448 * 224, '\x80');
  absl::StatusOr<RequestFootprint> f = EstimateFootprint(GrayJob(pixels), Limits());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->request_bytes, 448 * 224 + 100);
  EXPECT_EQ(f->decoded_bytes, kDecodedBytesPerPixel * 448 * 224);
  // Either orientation plans a 224x224 model input.
  EXPECT_EQ(f->model_input_bytes, kModelInputBytesPerPixel * 224 * 224);
  EXPECT_EQ(f->model_output_bytes, (1 + 4 + 196) * 384 * kModelOutputBytesPerValue);
  EXPECT_EQ(f->response_bytes, kTensorBytes + kOtherBytes);
  EXPECT_EQ(f->answer_bytes, kResponseCopies * f->response_bytes);  // the default: binary, twice
  EXPECT_EQ(f->total(), f->request_bytes + f->decoded_bytes + f->model_input_bytes +
                            f->model_output_bytes + f->answer_bytes);
  EXPECT_THAT(f->Describe(),
              HasSubstr(absl::StrCat("+ response 2 x ", f->response_bytes, " bytes")));
}

TEST(RequestFootprintTest, EachIntermediateLayerAddsTheOutputsAgain) {
  const auto pixels = std::make_shared<const std::string>(448 * 224, '\x80');
  EmbedJob job = GrayJob(pixels);
  job.settings.layers.indices = {0, 5, 11};
  absl::StatusOr<RequestFootprint> f = EstimateFootprint(job, Limits());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->model_output_bytes, 4 * (1 + 4 + 196) * 384 * kModelOutputBytesPerValue);
  // Each layer's entry also counts another image's worth of fields.
  EXPECT_EQ(f->response_bytes, 4 * kTensorBytes + kOtherBytes + 3 * kResponseBytesPerImage);
}

TEST(RequestFootprintTest, CompactDtypesCountTheirBytesPerVector) {
  const auto pixels = std::make_shared<const std::string>(448 * 224, '\x80');
  EmbedJob job = GrayJob(pixels);
  job.settings.dtype = DType::kInt8;  // 384 bytes and a 4-byte scale per vector
  absl::StatusOr<RequestFootprint> f = EstimateFootprint(job, Limits());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->response_bytes, (1 + 196) * (384 + 4) + kOtherBytes);
  job.settings.dtype = DType::kBinary;  // 48 bytes per vector
  f = EstimateFootprint(job, Limits());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->response_bytes, (1 + 196) * 48 + kOtherBytes);
}

TEST(RequestFootprintTest, TheFrontDoorStatesWhatItsAnswerHolds) {
  const auto pixels = std::make_shared<const std::string>(448 * 224, '\x80');
  EmbedJob job = GrayJob(pixels);
  job.answer_size = {.per_tensor_byte = 21, .per_other_byte = 2};  // a JSON answer of numbers
  absl::StatusOr<RequestFootprint> f = EstimateFootprint(job, Limits());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->response_bytes, kTensorBytes + kOtherBytes);  // the 2 GiB check is unchanged
  EXPECT_EQ(f->answer_bytes, 21 * kTensorBytes + 2 * kOtherBytes);
  EXPECT_THAT(f->Describe(), HasSubstr(absl::StrCat("+ answer ", f->answer_bytes, " bytes")));
}

TEST(RequestFootprintTest, ImageErrorsNameTheImage) {
  const auto pixels = std::make_shared<const std::string>(10, '\0');
  EmbedJob job = GrayJob(pixels);
  job.images.push_back(
      RawJobImage(*pixels, RawPixels{int64_t{1} << 21, 1, preprocess::RawPixelFormat::kRgb8}));
  absl::StatusOr<RequestFootprint> f = EstimateFootprint(job, Limits());
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  // The first image's data is short of 448x224, so it fails first.
  EXPECT_THAT(f.status().message(), HasSubstr("image[0]"));

  EmbedJob huge;
  huge.images.push_back(
      RawJobImage(*pixels, RawPixels{int64_t{1} << 21, 1, preprocess::RawPixelFormat::kRgb8}));
  f = EstimateFootprint(huge, Limits());
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(), "image[0]: raw image 2097152x1 is larger than any limit allows");
  EXPECT_EQ(ReasonOf(f.status()), kReasonTooLarge);
}

}  // namespace
}  // namespace dinov3::pipeline
