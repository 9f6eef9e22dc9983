// The request half of the Open Inference Protocol mapping: input tensors, requested outputs and
// parameters to the pipeline's EmbedJob (viewing the request's buffers, no copy), and every
// refusal naming what is wrong.
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

using pipeline::JobImage;

pipeline::RequestLimits Limits() {
  pipeline::RequestLimits limits;
  limits.max_images_per_request = 64;
  limits.default_decode = preprocess::DecodeMode::kFast;  // unlike the options' own default
  return limits;
}

std::string BytesOf(const JobImage& image) { return std::string(image.bytes); }

// Whether `view` lies inside `storage`.
bool Inside(absl::string_view view, const std::string& storage) {
  return view.data() >= storage.data() &&
         view.data() + view.size() <= storage.data() + storage.size();
}

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
  absl::StatusOr<MappedRequest> mapped = ToEmbedJob(ImageRequest({"first", "", "third"}), Limits());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const pipeline::EmbedJob& job = mapped->job;
  ASSERT_EQ(job.images.size(), 3u);
  EXPECT_EQ(BytesOf(job.images[0]), "first");
  EXPECT_EQ(BytesOf(job.images[1]), "");
  EXPECT_EQ(BytesOf(job.images[2]), "third");
  for (const JobImage& image : job.images) EXPECT_FALSE(image.raw.has_value());
  EXPECT_EQ(job.model_name, "m");
  EXPECT_EQ(job.request_id, "req-1");
  EXPECT_TRUE(job.settings.outputs.cls);
  EXPECT_TRUE(job.settings.outputs.pooled);
  EXPECT_FALSE(job.settings.outputs.patch_tokens);
  EXPECT_FALSE(job.settings.outputs.registers);
  EXPECT_EQ(job.settings.dtype, DType::kFloat32);
  EXPECT_EQ(job.settings.preprocess.decode, preprocess::DecodeMode::kFast);  // server's default
  EXPECT_EQ(job.settings.priority, 0);
  ASSERT_EQ(mapped->plan.entries.size(), 2u);
  EXPECT_EQ(mapped->plan.entries[0].output, pipeline::OutputKind::kCls);
  EXPECT_EQ(mapped->plan.entries[1].output, pipeline::OutputKind::kPooled);
  // The raw contents (3 x 4-byte lengths + 10 bytes) and the id, held by the job's owner.
  EXPECT_EQ(job.received_bytes, 12 + 10 + 5);
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
  absl::StatusOr<MappedRequest> mapped = ToEmbedJob(std::move(r), Limits());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ(mapped->job.images.size(), 2u);
  EXPECT_EQ(BytesOf(mapped->job.images[1]), "bb");
}

TEST(InferenceTensorsTest, TheJobViewsTheRequestsBuffersWithoutCopying) {
  absl::StatusOr<MappedRequest> mapped = ToEmbedJob(ImageRequest({"first", "second"}), Limits());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const auto* owner = static_cast<const InferenceRequest*>(mapped->job.owner.get());
  ASSERT_NE(owner, nullptr);
  ASSERT_EQ(owner->inputs.size(), 1u);
  for (const JobImage& image : mapped->job.images) {
    EXPECT_TRUE(Inside(image.bytes, owner->inputs[0].raw));
  }
  absl::StatusOr<MappedRequest> pixels = ToEmbedJob(PixelRequest(2, 2, 3), Limits());
  ASSERT_TRUE(pixels.ok()) << pixels.status();
  const auto* pixel_owner = static_cast<const InferenceRequest*>(pixels->job.owner.get());
  for (const JobImage& image : pixels->job.images) {
    EXPECT_TRUE(Inside(image.bytes, pixel_owner->inputs[0].raw));
  }
}

TEST(InferenceTensorsTest, ImageCountMustMatchTheData) {
  InferenceRequest r = ImageRequest({"a", "b"});
  r.inputs[0].shape = {3};
  ExpectInvalid(ToEmbedJob(std::move(r), Limits()), "input 'IMAGE': shape [3] says 3");
}

TEST(InferenceTensorsTest, TruncatedRawBytesAreRefused) {
  InferenceRequest r = ImageRequest({"abcdef"});
  r.inputs[0].raw.resize(r.inputs[0].raw.size() - 1);
  ExpectInvalid(ToEmbedJob(std::move(r), Limits()), "element 0 says 6 bytes");
  InferenceRequest short_length = ImageRequest({});
  short_length.inputs[0].shape = {1};
  short_length.inputs[0].raw = "ab";
  ExpectInvalid(ToEmbedJob(std::move(short_length), Limits()), "4-byte length");
}

TEST(InferenceTensorsTest, ImageNeedsBytesAndRankOne) {
  InferenceRequest r = ImageRequest({"a"});
  r.inputs[0].datatype = "UINT8";
  ExpectInvalid(ToEmbedJob(std::move(r), Limits()), "datatype UINT8, expected BYTES");
  InferenceRequest rank = ImageRequest({"a"});
  rank.inputs[0].shape = {1, 1};
  ExpectInvalid(ToEmbedJob(std::move(rank), Limits()), "expected [N]");
}

TEST(InferenceTensorsTest, PixelsBecomeRawRgbImages) {
  absl::StatusOr<MappedRequest> mapped = ToEmbedJob(PixelRequest(2, 2, 3), Limits());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  ASSERT_EQ(mapped->job.images.size(), 2u);
  const JobImage& second = mapped->job.images[1];
  ASSERT_TRUE(second.raw.has_value());
  EXPECT_EQ(second.raw->height, 2);
  EXPECT_EQ(second.raw->width, 3);
  EXPECT_EQ(second.raw->format, preprocess::RawPixelFormat::kRgb8);
  ASSERT_EQ(second.bytes.size(), 18u);
  EXPECT_EQ(second.bytes[0], static_cast<char>(18));  // the second image's first byte
}

TEST(InferenceTensorsTest, PixelBytesMustMatchTheShape) {
  InferenceRequest r = PixelRequest(2, 2, 3);
  r.inputs[0].raw.pop_back();
  ExpectInvalid(ToEmbedJob(std::move(r), Limits()),
                "input 'PIXELS': shape [2, 2, 3, 3] needs 2 x 18 bytes, the data has 35");
}

TEST(InferenceTensorsTest, PixelsNeedUint8AndNhw3) {
  InferenceRequest r = PixelRequest(1, 2, 2);
  r.inputs[0].datatype = "FP32";
  ExpectInvalid(ToEmbedJob(std::move(r), Limits()), "datatype FP32, expected UINT8");
  InferenceRequest channels = PixelRequest(1, 2, 2);
  channels.inputs[0].shape = {1, 2, 6, 1};
  ExpectInvalid(ToEmbedJob(std::move(channels), Limits()), "expected [N, H, W, 3]");
  InferenceRequest zero = PixelRequest(1, 2, 2);
  zero.inputs[0].shape = {1, 0, 2, 3};
  ExpectInvalid(ToEmbedJob(std::move(zero), Limits()), "height must be in [1, ");
}

TEST(InferenceTensorsTest, ImageCountLimitComesBeforeAnyAllocation) {
  // A huge first dimension with almost no data: refused by the limit, nothing allocated.
  InferenceRequest pixels = PixelRequest(1, 1, 1);
  pixels.inputs[0].shape = {int64_t{1} << 40, 1, 1, 3};
  absl::StatusOr<MappedRequest> mapped = ToEmbedJob(std::move(pixels), Limits());
  ExpectInvalid(mapped, "above the limit of 64 (max_images_per_request)");
  EXPECT_EQ(ReasonOf(mapped.status()), kReasonTooLarge);
  InferenceRequest images = ImageRequest({"a"});
  images.inputs[0].shape = {65};
  ExpectInvalid(ToEmbedJob(std::move(images), Limits()), "65 images in one request");
  InferenceRequest none = ImageRequest({});
  ExpectInvalid(ToEmbedJob(std::move(none), Limits()), "must be at least 1");
}

TEST(InferenceTensorsTest, InputsMustBeExactlyOneKnownTensor) {
  InferenceRequest both = ImageRequest({"a"});
  both.inputs.push_back(PixelRequest(1, 1, 1).inputs[0]);
  ExpectInvalid(ToEmbedJob(std::move(both), Limits()), "inputs IMAGE and PIXELS");
  InferenceRequest twice = ImageRequest({"a"});
  twice.inputs.push_back(twice.inputs[0]);
  ExpectInvalid(ToEmbedJob(std::move(twice), Limits()), "input 'IMAGE': given twice");
  InferenceRequest unknown = ImageRequest({"a"});
  unknown.inputs[0].name = "INPUT0";
  ExpectInvalid(ToEmbedJob(std::move(unknown), Limits()), "input 'INPUT0': unknown input");
  ExpectInvalid(ToEmbedJob(InferenceRequest{}, Limits()), "no input");
  InferenceRequest shm = ImageRequest({"a"});
  shm.inputs[0].parameters["shared_memory_region"] = std::string("r");
  ExpectInvalid(ToEmbedJob(std::move(shm), Limits()), "'shared_memory_region'");
}

TEST(InferenceTensorsTest, RequestedOutputsAndTheirDtypes) {
  InferenceRequest r = ImageRequest({"a"});
  r.parameters["datatype"] = std::string("FP16");
  r.outputs = {{"PATCH_TOKENS", {}}, {"REGISTERS", {}}};
  absl::StatusOr<MappedRequest> same = ToEmbedJob(std::move(r), Limits());
  ASSERT_TRUE(same.ok()) << same.status();
  const OutputSet& outputs = same->job.settings.outputs;
  EXPECT_TRUE(outputs.patch_tokens && outputs.registers);
  EXPECT_FALSE(outputs.cls || outputs.pooled);
  ASSERT_EQ(same->plan.entries.size(), 2u);
  EXPECT_EQ(same->plan.entries[0].output, pipeline::OutputKind::kPatchTokens);
  EXPECT_EQ(same->plan.entries[1].output, pipeline::OutputKind::kRegisters);
  EXPECT_EQ(same->job.settings.dtype, DType::kFloat16);  // one dtype: runs in it
  EXPECT_EQ(same->plan.run_dtype, DType::kFloat16);

  InferenceRequest mixed = ImageRequest({"a"});
  mixed.outputs = {{"CLS", {{"datatype", std::string("bf16")}}}, {"POOLED", {}}};
  absl::StatusOr<MappedRequest> m = ToEmbedJob(std::move(mixed), Limits());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->job.settings.dtype, DType::kFloat32);  // mixed: runs in float32, converted after
  EXPECT_EQ(m->plan.entries[0].dtype, DType::kBFloat16);
  EXPECT_EQ(m->plan.entries[1].dtype, DType::kFloat32);
}

TEST(InferenceTensorsTest, BadOutputsAreRefused) {
  InferenceRequest unknown = ImageRequest({"a"});
  unknown.outputs = {{"cls", {}}};
  ExpectInvalid(ToEmbedJob(std::move(unknown), Limits()), "output 'cls': unknown value");
  InferenceRequest twice = ImageRequest({"a"});
  twice.outputs = {{"CLS", {}}, {"CLS", {}}};
  ExpectInvalid(ToEmbedJob(std::move(twice), Limits()), "output 'CLS': requested twice");
  InferenceRequest dtype = ImageRequest({"a"});
  dtype.outputs = {{"CLS", {{"datatype", std::string("FP64")}}}};
  ExpectInvalid(ToEmbedJob(std::move(dtype), Limits()),
                "output 'CLS' parameter 'datatype': unknown value 'FP64'");
  InferenceRequest param = ImageRequest({"a"});
  param.outputs = {{"CLS", {{"classification", int64_t{3}}}}};
  ExpectInvalid(ToEmbedJob(std::move(param), Limits()), "'classification'");
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
  absl::StatusOr<MappedRequest> mapped = ToEmbedJob(std::move(r), Limits());
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const pipeline::EmbedSettings& e = mapped->job.settings;
  EXPECT_EQ(e.preprocess.mode, preprocess::ResizeMode::kShorterSideCenterCrop);
  EXPECT_EQ(e.preprocess.height, 256);
  EXPECT_EQ(e.preprocess.width, 256);
  EXPECT_EQ(e.preprocess.decode, preprocess::DecodeMode::kFast);
  EXPECT_TRUE(e.l2_normalize);
  EXPECT_EQ(e.priority, 1);
  EXPECT_EQ(mapped->timeout, absl::Milliseconds(2500));

  InferenceRequest ints = ImageRequest({"a"});
  ints.parameters = {{"priority", int64_t{2}},
                     {"resize", std::string("RESIZE_KEEP_ASPECT")},
                     {"max_patches", int64_t{100}},
                     {"timeout", int64_t{0}}};
  absl::StatusOr<MappedRequest> m = ToEmbedJob(std::move(ints), Limits());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->job.settings.priority, -1);  // the native enum's 2: LOW
  EXPECT_EQ(m->job.settings.preprocess.mode, preprocess::ResizeMode::kKeepAspect);
  EXPECT_EQ(m->job.settings.preprocess.max_patches, 100);
  EXPECT_EQ(m->timeout, absl::InfiniteDuration());

  InferenceRequest exact = ImageRequest({"a"});
  exact.parameters = {{"decode", std::string("DECODE_EXACT")}};
  absl::StatusOr<MappedRequest> e2 = ToEmbedJob(std::move(exact), Limits());
  ASSERT_TRUE(e2.ok()) << e2.status();
  EXPECT_EQ(e2->job.settings.preprocess.decode, preprocess::DecodeMode::kExact);
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
    ExpectInvalid(ToEmbedJob(std::move(r), Limits()), message);
  }
}

TEST(InferenceTensorsTest, PatchTokensOfSeveralKeepAspectImagesAreRefused) {
  InferenceRequest r = ImageRequest({"a", "b"});
  r.parameters["resize"] = std::string("keep_aspect");
  r.outputs = {{"PATCH_TOKENS", {}}};
  ExpectInvalid(ToEmbedJob(std::move(r), Limits()), "output 'PATCH_TOKENS'");
  InferenceRequest one = ImageRequest({"a"});
  one.parameters["resize"] = std::string("keep_aspect");
  one.outputs = {{"PATCH_TOKENS", {}}};
  EXPECT_TRUE(ToEmbedJob(std::move(one), Limits()).ok());
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
