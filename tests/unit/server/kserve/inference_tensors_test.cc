// The request half of the Open Inference Protocol mapping: input tensors, requested outputs and
// parameters to a v1::EmbedRequest, and every refusal naming what is wrong.
#include "server/kserve/inference_tensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "server/common/status_reason.h"

namespace dinov3::kserve {
namespace {

using ::testing::HasSubstr;

constexpr int kMaxImages = 64;

// BYTES elements in the raw (length-prefixed) form.
std::string RawBytes(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& e : elements) {
    const uint32_t n = static_cast<uint32_t>(e.size());
    raw.append({static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                static_cast<char>((n >> 16) & 0xff), static_cast<char>(n >> 24)});
    raw += e;
  }
  return raw;
}

InputTensor RawInput(std::string name, std::string datatype, std::vector<int64_t> shape,
                     std::string raw) {
  InputTensor t;
  t.name = std::move(name);
  t.datatype = std::move(datatype);
  t.shape = std::move(shape);
  t.has_raw = true;
  t.raw = std::move(raw);
  return t;
}

InferenceRequest ImageRequest(std::vector<std::string> files) {
  InferenceRequest r;
  r.model_name = "m";
  r.id = "req-1";
  const int64_t n = static_cast<int64_t>(files.size());
  r.inputs.push_back(RawInput("IMAGE", "BYTES", {n}, RawBytes(files)));
  return r;
}

InferenceRequest PixelRequest(int n, int h, int w) {
  InferenceRequest r;
  std::string pixels(static_cast<size_t>(n * h * w * 3), '\0');
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<char>(i);
  r.inputs.push_back(RawInput("PIXELS", "UINT8", {n, h, w, 3}, std::move(pixels)));
  return r;
}

void ExpectInvalid(const absl::StatusOr<MappedRequest>& mapped, const std::string& part) {
  ASSERT_FALSE(mapped.ok());
  EXPECT_EQ(mapped.status().code(), absl::StatusCode::kInvalidArgument) << mapped.status();
  EXPECT_THAT(mapped.status().message(), HasSubstr(part));
}

TEST(InferenceTensorsTest, RawImageBytesBecomeEncodedImagesWithTheDefaultOutputs) {
  absl::StatusOr<MappedRequest> mapped =
      ToEmbedRequest(ImageRequest({"first", "", "third"}), kMaxImages);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const v1::EmbedRequest& e = mapped->embed;
  ASSERT_EQ(e.images_size(), 3);
  EXPECT_EQ(e.images(0).encoded(), "first");
  EXPECT_EQ(e.images(1).encoded(), "");
  EXPECT_EQ(e.images(2).encoded(), "third");
  EXPECT_EQ(e.model(), "m");
  EXPECT_EQ(e.request_id(), "req-1");
  EXPECT_THAT(e.outputs(), ::testing::ElementsAre(v1::CLS, v1::POOLED));
  EXPECT_EQ(e.dtype(), v1::FLOAT32);
  ASSERT_EQ(mapped->plan.entries.size(), 2u);
  EXPECT_EQ(mapped->timeout, absl::InfiniteDuration());
}

TEST(InferenceTensorsTest, TypedImageElementsAreTaken) {
  InferenceRequest r;
  InputTensor t;
  t.name = "IMAGE";
  t.datatype = "BYTES";
  t.shape = {2};
  t.elements = {"a", "bb"};
  r.inputs.push_back(std::move(t));
  absl::StatusOr<MappedRequest> mapped = ToEmbedRequest(std::move(r), kMaxImages);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ(mapped->embed.images_size(), 2);
  EXPECT_EQ(mapped->embed.images(1).encoded(), "bb");
}

TEST(InferenceTensorsTest, ImageCountMustMatchTheData) {
  InferenceRequest r = ImageRequest({"a", "b"});
  r.inputs[0].shape = {3};
  ExpectInvalid(ToEmbedRequest(std::move(r), kMaxImages), "input 'IMAGE': shape [3] says 3");
}

TEST(InferenceTensorsTest, TruncatedRawBytesAreRefused) {
  InferenceRequest r = ImageRequest({"abcdef"});
  r.inputs[0].raw.resize(r.inputs[0].raw.size() - 1);
  ExpectInvalid(ToEmbedRequest(std::move(r), kMaxImages), "element 0 says 6 bytes");
  InferenceRequest short_length = ImageRequest({});
  short_length.inputs[0].shape = {1};
  short_length.inputs[0].raw = "ab";
  ExpectInvalid(ToEmbedRequest(std::move(short_length), kMaxImages), "4-byte length");
}

TEST(InferenceTensorsTest, ImageNeedsBytesAndRankOne) {
  InferenceRequest r = ImageRequest({"a"});
  r.inputs[0].datatype = "UINT8";
  ExpectInvalid(ToEmbedRequest(std::move(r), kMaxImages), "datatype UINT8, expected BYTES");
  InferenceRequest rank = ImageRequest({"a"});
  rank.inputs[0].shape = {1, 1};
  ExpectInvalid(ToEmbedRequest(std::move(rank), kMaxImages), "expected [N]");
}

TEST(InferenceTensorsTest, PixelsBecomeRawRgbImages) {
  absl::StatusOr<MappedRequest> mapped = ToEmbedRequest(PixelRequest(2, 2, 3), kMaxImages);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ(mapped->embed.images_size(), 2);
  const v1::RawImage& second = mapped->embed.images(1).raw();
  EXPECT_EQ(second.height(), 2u);
  EXPECT_EQ(second.width(), 3u);
  EXPECT_EQ(second.format(), v1::RGB8);
  ASSERT_EQ(second.data().size(), 18u);
  EXPECT_EQ(second.data()[0], static_cast<char>(18));  // the second image's first byte
}

TEST(InferenceTensorsTest, PixelBytesMustMatchTheShape) {
  InferenceRequest r = PixelRequest(2, 2, 3);
  r.inputs[0].raw.pop_back();
  ExpectInvalid(ToEmbedRequest(std::move(r), kMaxImages),
                "input 'PIXELS': shape [2, 2, 3, 3] needs 2 x 18 bytes, the data has 35");
}

TEST(InferenceTensorsTest, PixelsNeedUint8AndNhw3) {
  InferenceRequest r = PixelRequest(1, 2, 2);
  r.inputs[0].datatype = "FP32";
  ExpectInvalid(ToEmbedRequest(std::move(r), kMaxImages), "datatype FP32, expected UINT8");
  InferenceRequest channels = PixelRequest(1, 2, 2);
  channels.inputs[0].shape = {1, 2, 6, 1};
  ExpectInvalid(ToEmbedRequest(std::move(channels), kMaxImages), "expected [N, H, W, 3]");
  InferenceRequest zero = PixelRequest(1, 2, 2);
  zero.inputs[0].shape = {1, 0, 2, 3};
  ExpectInvalid(ToEmbedRequest(std::move(zero), kMaxImages), "height must be in [1, ");
}

TEST(InferenceTensorsTest, ImageCountLimitComesBeforeAnyAllocation) {
  // A huge first dimension with almost no data: refused by the limit, nothing allocated.
  InferenceRequest pixels = PixelRequest(1, 1, 1);
  pixels.inputs[0].shape = {int64_t{1} << 40, 1, 1, 3};
  absl::StatusOr<MappedRequest> mapped = ToEmbedRequest(std::move(pixels), kMaxImages);
  ExpectInvalid(mapped, "above the limit of 64 (max_images_per_request)");
  EXPECT_EQ(ReasonOf(mapped.status()), kReasonTooLarge);
  InferenceRequest images = ImageRequest({"a"});
  images.inputs[0].shape = {65};
  ExpectInvalid(ToEmbedRequest(std::move(images), kMaxImages), "65 images in one request");
  InferenceRequest none = ImageRequest({});
  ExpectInvalid(ToEmbedRequest(std::move(none), kMaxImages), "must be at least 1");
}

TEST(InferenceTensorsTest, InputsMustBeExactlyOneKnownTensor) {
  InferenceRequest both = ImageRequest({"a"});
  both.inputs.push_back(PixelRequest(1, 1, 1).inputs[0]);
  ExpectInvalid(ToEmbedRequest(std::move(both), kMaxImages), "inputs IMAGE and PIXELS");
  InferenceRequest twice = ImageRequest({"a"});
  twice.inputs.push_back(twice.inputs[0]);
  ExpectInvalid(ToEmbedRequest(std::move(twice), kMaxImages), "input 'IMAGE': given twice");
  InferenceRequest unknown = ImageRequest({"a"});
  unknown.inputs[0].name = "INPUT0";
  ExpectInvalid(ToEmbedRequest(std::move(unknown), kMaxImages), "input 'INPUT0': unknown input");
  ExpectInvalid(ToEmbedRequest(InferenceRequest{}, kMaxImages), "no input");
  InferenceRequest shm = ImageRequest({"a"});
  shm.inputs[0].parameters["shared_memory_region"] = std::string("r");
  ExpectInvalid(ToEmbedRequest(std::move(shm), kMaxImages), "'shared_memory_region'");
}

TEST(InferenceTensorsTest, RequestedOutputsAndTheirDtypes) {
  InferenceRequest r = ImageRequest({"a"});
  r.parameters["datatype"] = std::string("FP16");
  r.outputs = {{"PATCH_TOKENS", {}}, {"REGISTERS", {}}};
  absl::StatusOr<MappedRequest> same = ToEmbedRequest(std::move(r), kMaxImages);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_THAT(same->embed.outputs(), ::testing::ElementsAre(v1::PATCH_TOKENS, v1::REGISTERS));
  EXPECT_EQ(same->embed.dtype(), v1::FLOAT16);  // one dtype: runs in it
  EXPECT_EQ(same->plan.run_dtype, DType::kFloat16);

  InferenceRequest mixed = ImageRequest({"a"});
  mixed.outputs = {{"CLS", {{"datatype", std::string("bf16")}}}, {"POOLED", {}}};
  absl::StatusOr<MappedRequest> m = ToEmbedRequest(std::move(mixed), kMaxImages);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->embed.dtype(), v1::FLOAT32);  // mixed: runs in float32, converted after
  EXPECT_EQ(m->plan.entries[0].dtype, DType::kBFloat16);
  EXPECT_EQ(m->plan.entries[1].dtype, DType::kFloat32);
}

TEST(InferenceTensorsTest, BadOutputsAreRefused) {
  InferenceRequest unknown = ImageRequest({"a"});
  unknown.outputs = {{"cls", {}}};
  ExpectInvalid(ToEmbedRequest(std::move(unknown), kMaxImages), "output 'cls': unknown value");
  InferenceRequest twice = ImageRequest({"a"});
  twice.outputs = {{"CLS", {}}, {"CLS", {}}};
  ExpectInvalid(ToEmbedRequest(std::move(twice), kMaxImages), "output 'CLS': requested twice");
  InferenceRequest dtype = ImageRequest({"a"});
  dtype.outputs = {{"CLS", {{"datatype", std::string("FP64")}}}};
  ExpectInvalid(ToEmbedRequest(std::move(dtype), kMaxImages),
                "output 'CLS' parameter 'datatype': unknown value 'FP64'");
  InferenceRequest param = ImageRequest({"a"});
  param.outputs = {{"CLS", {{"classification", int64_t{3}}}}};
  ExpectInvalid(ToEmbedRequest(std::move(param), kMaxImages), "'classification'");
}

TEST(InferenceTensorsTest, ParametersSetTheNativeOptions) {
  InferenceRequest r = ImageRequest({"a"});
  r.parameters = {{"resize", std::string("shorter_side_center_crop")},
                  {"size", int64_t{256}},
                  {"decode", std::string("fast")},
                  {"l2_normalize", true},
                  {"priority", std::string("HIGH")},
                  {"timeout", int64_t{2500000}},
                  {"binary_data_output", true}};  // REST transport: ignored
  absl::StatusOr<MappedRequest> mapped = ToEmbedRequest(std::move(r), kMaxImages);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const v1::EmbedRequest& e = mapped->embed;
  EXPECT_EQ(e.preprocess().mode(), v1::RESIZE_SHORTER_SIDE_CENTER_CROP);
  EXPECT_EQ(e.preprocess().height(), 256u);
  EXPECT_EQ(e.preprocess().width(), 256u);
  EXPECT_EQ(e.preprocess().decode(), v1::DECODE_FAST);
  EXPECT_TRUE(e.l2_normalize());
  EXPECT_EQ(e.priority(), v1::PRIORITY_HIGH);
  EXPECT_EQ(mapped->timeout, absl::Milliseconds(2500));

  InferenceRequest ints = ImageRequest({"a"});
  ints.parameters = {{"priority", int64_t{2}},
                     {"resize", std::string("RESIZE_KEEP_ASPECT")},
                     {"max_patches", int64_t{100}},
                     {"timeout", int64_t{0}}};
  absl::StatusOr<MappedRequest> m = ToEmbedRequest(std::move(ints), kMaxImages);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->embed.priority(), v1::PRIORITY_LOW);
  EXPECT_EQ(m->embed.preprocess().mode(), v1::RESIZE_KEEP_ASPECT);
  EXPECT_EQ(m->embed.preprocess().max_patches(), 100u);
  EXPECT_EQ(m->timeout, absl::InfiniteDuration());
}

TEST(InferenceTensorsTest, BadParametersAreRefused) {
  const std::vector<std::pair<Parameters, std::string>> cases = {
      {{{"resize", std::string("stretch")}}, "parameter 'resize': unknown value 'stretch'"},
      {{{"size", std::string("224")}}, "parameter 'size': expected an integer, got a string"},
      {{{"size", int64_t{-1}}}, "parameter 'size': -1 is out of range"},
      {{{"l2_normalize", int64_t{1}}}, "parameter 'l2_normalize': expected a bool"},
      {{{"priority", int64_t{7}}}, "parameter 'priority': 7 is out of range [0, 2]"},
      {{{"timeout", int64_t{-5}}}, "parameter 'timeout': -5 is out of range"},
      {{{"datatype", 1.5}}, "parameter 'datatype': expected a string, got a double"},
      {{{"sequence_id", int64_t{1}}}, "parameter 'sequence_id': unknown parameter"},
  };
  for (const auto& [parameters, message] : cases) {
    InferenceRequest r = ImageRequest({"a"});
    r.parameters = parameters;
    ExpectInvalid(ToEmbedRequest(std::move(r), kMaxImages), message);
  }
}

TEST(InferenceTensorsTest, PatchTokensOfSeveralKeepAspectImagesAreRefused) {
  InferenceRequest r = ImageRequest({"a", "b"});
  r.parameters["resize"] = std::string("keep_aspect");
  r.outputs = {{"PATCH_TOKENS", {}}};
  ExpectInvalid(ToEmbedRequest(std::move(r), kMaxImages), "output 'PATCH_TOKENS'");
  InferenceRequest one = ImageRequest({"a"});
  one.parameters["resize"] = std::string("keep_aspect");
  one.outputs = {{"PATCH_TOKENS", {}}};
  EXPECT_TRUE(ToEmbedRequest(std::move(one), kMaxImages).ok());
}

TEST(InferenceTensorsTest, ModelVersions) {
  EXPECT_TRUE(CheckModelVersion("m", "").ok());
  EXPECT_TRUE(CheckModelVersion("m", "1").ok());
  const absl::Status two = CheckModelVersion("m", "2");
  EXPECT_EQ(two.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(two.message(), HasSubstr("model 'm' has no version '2'"));
}

TEST(InferenceTensorsTest, Uint8FromValues) {
  const std::vector<uint32_t> values = {0, 1, 255, 7, 8, 9};
  absl::StatusOr<std::string> bytes =
      Uint8FromValues("PIXELS", std::vector<int64_t>{1, 1, 2, 3}, values);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, std::string("\x00\x01\xff\x07\x08\x09", 6));
  EXPECT_THAT(
      Uint8FromValues("PIXELS", std::vector<int64_t>{1, 1, 1, 3}, values).status().message(),
      HasSubstr("shape [1, 1, 1, 3] does not match the 6 values"));
  EXPECT_THAT(
      Uint8FromValues("PIXELS", std::vector<int64_t>{int64_t{1} << 40, 1 << 20, 1, 3}, values)
          .status()
          .message(),
      HasSubstr("does not match"));
  const std::vector<uint32_t> big = {256};
  EXPECT_THAT(Uint8FromValues("PIXELS", std::vector<int64_t>{1}, big).status().message(),
              HasSubstr("value 256 at 0 does not fit UINT8"));
}

}  // namespace
}  // namespace dinov3::kserve
