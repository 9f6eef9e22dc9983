// The request half of inference_tensors.h: parameters, requested outputs and input tensors to
// a pipeline::EmbedJob.
#include "server/kserve/inference_tensors.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"

namespace dinov3::kserve {
namespace {

using pipeline::OutputKind;
using preprocess::ResizeMode;

struct Name {
  const char* name;
  int value;
};

constexpr Name kOutputs[] = {{"CLS", static_cast<int>(OutputKind::kCls)},
                             {"POOLED", static_cast<int>(OutputKind::kPooled)},
                             {"PATCH_TOKENS", static_cast<int>(OutputKind::kPatchTokens)},
                             {"REGISTERS", static_cast<int>(OutputKind::kRegisters)}};
constexpr Name kDatatypes[] = {{"FP32", static_cast<int>(DType::kFloat32)},
                               {"FP16", static_cast<int>(DType::kFloat16)},
                               {"BF16", static_cast<int>(DType::kBFloat16)}};
constexpr int kFixed = static_cast<int>(ResizeMode::kFixed);
constexpr int kShorterSide = static_cast<int>(ResizeMode::kShorterSideCenterCrop);
constexpr int kKeepAspect = static_cast<int>(ResizeMode::kKeepAspect);
constexpr Name kResizeModes[] = {{"fixed", kFixed},
                                 {"shorter_side_center_crop", kShorterSide},
                                 {"keep_aspect", kKeepAspect},
                                 {"RESIZE_FIXED", kFixed},
                                 {"RESIZE_SHORTER_SIDE_CENTER_CROP", kShorterSide},
                                 {"RESIZE_KEEP_ASPECT", kKeepAspect}};
// Decode modes; the server's default is resolved against the limits.
constexpr int kServerDefault = -1;
constexpr int kExact = static_cast<int>(preprocess::DecodeMode::kExact);
constexpr int kFast = static_cast<int>(preprocess::DecodeMode::kFast);
constexpr Name kDecodeModes[] = {
    {"server_default", kServerDefault},        {"exact", kExact},        {"fast", kFast},
    {"DECODE_SERVER_DEFAULT", kServerDefault}, {"DECODE_EXACT", kExact}, {"DECODE_FAST", kFast}};
// Priorities as the pipeline's task priorities (low -1, normal 0, high 1).
constexpr Name kPriorities[] = {{"NORMAL", 0},          {"HIGH", 1},          {"LOW", -1},
                                {"PRIORITY_NORMAL", 0}, {"PRIORITY_HIGH", 1}, {"PRIORITY_LOW", -1}};
// The native enum's ints (Triton's uint64 priority: 0 default, 1 highest), as task priorities.
constexpr int kPriorityOfInt[] = {0, 1, -1};
// Parameters of the REST binary-tensor extension: its front door's business, not ours.
constexpr absl::string_view kTransportParameters[] = {"binary_data_output", "binary_data",
                                                      "binary_data_size"};
// Sides and patch counts above this are refused here (the limits refuse far less).
constexpr int64_t kMaxSide = 1 << 20;

absl::Status Invalid(absl::string_view what, absl::string_view problem) {
  return WithReason(absl::InvalidArgumentError(absl::StrCat(what, ": ", problem)),
                    kReasonInvalidRequest);
}

std::string Names(absl::Span<const Name> names) {
  return absl::StrJoin(names, ", ", [](std::string* out, const Name& n) { out->append(n.name); });
}

absl::StatusOr<int> Lookup(absl::string_view what, absl::string_view value,
                           absl::Span<const Name> names, bool ignore_case = true) {
  for (const Name& n : names) {
    if (ignore_case ? absl::EqualsIgnoreCase(value, n.name) : value == n.name) return n.value;
  }
  return Invalid(what, absl::StrCat("unknown value '", value.substr(0, 64), "'; expected one of ",
                                    Names(names)));
}

const char* TypeName(const ParameterValue& value) {
  constexpr const char* kNames[] = {"a bool", "an integer", "a string", "a double"};
  return kNames[value.index()];
}

absl::StatusOr<std::string> StringParam(absl::string_view what, const ParameterValue& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  return Invalid(what, absl::StrCat("expected a string, got ", TypeName(value)));
}

absl::StatusOr<int64_t> IntParam(absl::string_view what, const ParameterValue& value, int64_t min,
                                 int64_t max) {
  const auto* i = std::get_if<int64_t>(&value);
  if (i == nullptr)
    return Invalid(what, absl::StrCat("expected an integer, got ", TypeName(value)));
  if (*i < min || *i > max) {
    return Invalid(what, absl::StrCat(*i, " is out of range [", min, ", ", max, "]"));
  }
  return *i;
}

absl::StatusOr<DType> DatatypeParam(absl::string_view what, const ParameterValue& value) {
  ASSIGN_OR_RETURN(const std::string name, StringParam(what, value));
  ASSIGN_OR_RETURN(const int dtype, Lookup(what, name, kDatatypes));
  return static_cast<DType>(dtype);
}

bool IsTransportParameter(absl::string_view key) {
  for (absl::string_view t : kTransportParameters) {
    if (key == t) return true;
  }
  return false;
}

absl::StatusOr<int> PriorityParam(absl::string_view what, const ParameterValue& value) {
  if (std::holds_alternative<std::string>(value)) {
    return Lookup(what, std::get<std::string>(value), kPriorities);
  }
  ASSIGN_OR_RETURN(const int64_t priority, IntParam(what, value, 0, 2));
  return kPriorityOfInt[priority];
}

// One request parameter into `mapped` (outputs' dtype into `dtype`).
absl::Status ApplyParameter(const std::string& key, const ParameterValue& value,
                            const pipeline::RequestLimits& limits, MappedRequest& mapped,
                            DType& dtype) {
  const std::string what = absl::StrCat("parameter '", key.substr(0, 64), "'");
  pipeline::EmbedSettings& settings = mapped.job.settings;
  preprocess::PreprocessOptions& preprocess = settings.preprocess;
  if (key == "datatype") {
    ASSIGN_OR_RETURN(dtype, DatatypeParam(what, value));
  } else if (key == "resize") {
    ASSIGN_OR_RETURN(const std::string name, StringParam(what, value));
    ASSIGN_OR_RETURN(const int mode, Lookup(what, name, kResizeModes));
    preprocess.mode = static_cast<ResizeMode>(mode);
  } else if (key == "size" || key == "height" || key == "width") {
    ASSIGN_OR_RETURN(const int64_t side, IntParam(what, value, 0, kMaxSide));
    if (key != "width") preprocess.height = static_cast<int>(side);
    if (key != "height") preprocess.width = static_cast<int>(side);
  } else if (key == "max_patches") {
    ASSIGN_OR_RETURN(const int64_t patches, IntParam(what, value, 0, kMaxSide));
    preprocess.max_patches = static_cast<int>(patches);
  } else if (key == "decode") {
    ASSIGN_OR_RETURN(const std::string name, StringParam(what, value));
    ASSIGN_OR_RETURN(const int mode, Lookup(what, name, kDecodeModes));
    preprocess.decode =
        mode == kServerDefault ? limits.default_decode : static_cast<preprocess::DecodeMode>(mode);
  } else if (key == "l2_normalize") {
    const bool* b = std::get_if<bool>(&value);
    if (b == nullptr) return Invalid(what, absl::StrCat("expected a bool, got ", TypeName(value)));
    settings.l2_normalize = *b;
  } else if (key == "priority") {
    ASSIGN_OR_RETURN(settings.priority, PriorityParam(what, value));
  } else if (key == "timeout") {
    ASSIGN_OR_RETURN(const int64_t micros, IntParam(what, value, 0, INT64_MAX));
    mapped.timeout = micros == 0 ? absl::InfiniteDuration() : absl::Microseconds(micros);
  } else if (!IsTransportParameter(key)) {
    return Invalid(what,
                   "unknown parameter; expected datatype, resize, size, height, width, "
                   "max_patches, decode, l2_normalize, priority or timeout");
  }
  return absl::OkStatus();
}

// The requested outputs (default CLS, POOLED) with their dtypes; `dtype` is the request's.
absl::StatusOr<OutputPlan> PlanOutputs(const std::vector<RequestedOutput>& requested, DType dtype) {
  OutputPlan plan;
  if (requested.empty()) {
    plan.entries = {{OutputKind::kCls, dtype}, {OutputKind::kPooled, dtype}};
  }
  for (const RequestedOutput& output : requested) {
    const std::string what = absl::StrCat("output '", output.name.substr(0, 64), "'");
    ASSIGN_OR_RETURN(const int which, Lookup(what, output.name, kOutputs, /*ignore_case=*/false));
    OutputPlan::Entry entry{static_cast<OutputKind>(which), dtype};
    for (const OutputPlan::Entry& seen : plan.entries) {
      if (seen.output == entry.output) return Invalid(what, "requested twice");
    }
    for (const auto& [key, value] : output.parameters) {
      const std::string param = absl::StrCat(what, " parameter '", key.substr(0, 64), "'");
      if (key == "datatype") {
        ASSIGN_OR_RETURN(entry.dtype, DatatypeParam(param, value));
      } else if (!IsTransportParameter(key)) {
        return Invalid(param, "unknown parameter; expected datatype");
      }
    }
    plan.entries.push_back(entry);
  }
  plan.run_dtype = plan.entries.front().dtype;
  for (const OutputPlan::Entry& entry : plan.entries) {
    if (entry.dtype != plan.run_dtype) plan.run_dtype = DType::kFloat32;  // converted after
  }
  return plan;
}

std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The settings' output set of `plan`.
OutputSet OutputSetOf(const OutputPlan& plan) {
  OutputSet set;
  for (const OutputPlan::Entry& entry : plan.entries) {
    switch (entry.output) {
      case OutputKind::kCls:
        set.cls = true;
        break;
      case OutputKind::kPooled:
        set.pooled = true;
        break;
      case OutputKind::kPatchTokens:
        set.patch_tokens = true;
        break;
      case OutputKind::kRegisters:
        set.registers = true;
        break;
    }
  }
  return set;
}

// The bytes the request holds: its inputs' data and its id.
int64_t HeldBytes(const InferenceRequest& request) {
  int64_t bytes = static_cast<int64_t>(request.id.size());
  for (const InputTensor& input : request.inputs) {
    bytes += static_cast<int64_t>(input.raw.size());
    for (const std::string& element : input.elements) {
      bytes += static_cast<int64_t>(element.size());
    }
  }
  return bytes;
}

// The images count of a tensor whose first dimension counts them, checked against the limit.
absl::StatusOr<int> ImageCount(const InputTensor& input, int max_images) {
  const std::string what = absl::StrCat("input '", input.name, "'");
  const int64_t n = input.shape.front();
  if (n < 1) return Invalid(what, "the first dimension (the number of images) must be at least 1");
  if (n > max_images) {
    return WithReason(
        absl::InvalidArgumentError(absl::StrCat(what, ": ", n,
                                                " images in one request, above the "
                                                "limit of ",
                                                max_images, " (max_images_per_request)")),
        kReasonTooLarge);
  }
  return static_cast<int>(n);
}

// The number of length-prefixed BYTES elements in `raw`, or an error if it is not a sequence
// of them. Allocates nothing.
absl::StatusOr<int64_t> CountRawElements(absl::string_view what, absl::string_view raw) {
  int64_t count = 0;
  while (!raw.empty()) {
    if (raw.size() < 4) return Invalid(what, "raw contents end inside an element's 4-byte length");
    const uint32_t length = static_cast<uint8_t>(raw[0]) | static_cast<uint8_t>(raw[1]) << 8 |
                            static_cast<uint8_t>(raw[2]) << 16 |
                            static_cast<uint32_t>(static_cast<uint8_t>(raw[3])) << 24;
    raw.remove_prefix(4);
    if (length > raw.size()) {
      return Invalid(what, absl::StrCat("element ", count, " says ", length, " bytes, only ",
                                        raw.size(), " remain in the raw contents"));
    }
    raw.remove_prefix(length);
    ++count;
  }
  return count;
}

// IMAGE: BYTES [N], one encoded file each, into `job` (viewing the input's buffers).
absl::Status AddEncodedImages(const InputTensor& input, int max_images, pipeline::EmbedJob& job) {
  const std::string what = absl::StrCat("input '", input.name, "'");
  if (input.datatype != "BYTES") {
    return Invalid(what,
                   absl::StrCat("datatype ", input.datatype.substr(0, 16), ", expected BYTES"));
  }
  if (input.shape.size() != 1) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(input.shape),
                                      ", expected [N] (one encoded image file per element)"));
  }
  ASSIGN_OR_RETURN(const int n, ImageCount(input, max_images));
  const int64_t elements = input.has_raw ? 0 : static_cast<int64_t>(input.elements.size());
  ASSIGN_OR_RETURN(const int64_t count,
                   input.has_raw ? CountRawElements(what, input.raw) : elements);
  if (count != n) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(input.shape), " says ", n,
                                      " elements, the data has ", count));
  }
  if (!input.has_raw) {
    for (const std::string& element : input.elements) {
      job.images.push_back(pipeline::EncodedJobImage(element));
    }
    return absl::OkStatus();
  }
  absl::string_view raw = input.raw;
  for (int i = 0; i < n; ++i) {
    const uint32_t length = static_cast<uint8_t>(raw[0]) | static_cast<uint8_t>(raw[1]) << 8 |
                            static_cast<uint8_t>(raw[2]) << 16 |
                            static_cast<uint32_t>(static_cast<uint8_t>(raw[3])) << 24;
    job.images.push_back(pipeline::EncodedJobImage(raw.substr(4, length)));
    raw.remove_prefix(4 + length);
  }
  return absl::OkStatus();
}

// PIXELS: UINT8 [N, H, W, 3] RGB into `job` as raw RGB8 images (viewing the input's buffer).
absl::Status AddPixelImages(const InputTensor& input, int max_images, pipeline::EmbedJob& job) {
  const std::string what = absl::StrCat("input '", input.name, "'");
  if (input.datatype != "UINT8") {
    return Invalid(what,
                   absl::StrCat("datatype ", input.datatype.substr(0, 16), ", expected UINT8"));
  }
  const std::vector<int64_t>& shape = input.shape;
  if (shape.size() != 4 || shape[3] != 3) {
    return Invalid(
        what, absl::StrCat("shape ", ShapeString(shape), ", expected [N, H, W, 3] (RGB pixels)"));
  }
  ASSIGN_OR_RETURN(const int n, ImageCount(input, max_images));
  for (int d : {1, 2}) {
    if (shape[d] < 1 || shape[d] > kMaxSide) {
      return Invalid(what,
                     absl::StrCat("shape ", ShapeString(shape), ": ", d == 1 ? "height" : "width",
                                  " must be in [1, ", kMaxSide, "]"));
    }
  }
  if (!input.has_raw) {
    return Invalid(what, "no data: UINT8 pixels go in the raw contents (or typed uint contents)");
  }
  const int64_t image_bytes = shape[1] * shape[2] * 3;  // at most 3 * 2^40
  int64_t bytes = 0;
  if (__builtin_mul_overflow(image_bytes, int64_t{n}, &bytes) ||
      bytes != static_cast<int64_t>(input.raw.size())) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " needs ", n, " x ",
                                      image_bytes, " bytes, the data has ", input.raw.size()));
  }
  const absl::string_view data = input.raw;
  for (int i = 0; i < n; ++i) {
    job.images.push_back(pipeline::RawJobImage(
        data.substr(static_cast<size_t>(i * image_bytes), static_cast<size_t>(image_bytes)),
        pipeline::RawPixels{shape[2], shape[1], preprocess::RawPixelFormat::kRgb8}));
  }
  return absl::OkStatus();
}

// Exactly one of IMAGE and PIXELS, into `job`.
absl::Status AddImages(const std::vector<InputTensor>& inputs, int max_images,
                       pipeline::EmbedJob& job) {
  const InputTensor* image = nullptr;
  const InputTensor* pixels = nullptr;
  for (const InputTensor& input : inputs) {
    const std::string what = absl::StrCat("input '", input.name.substr(0, 64), "'");
    const InputTensor** slot = input.name == kImageInput    ? &image
                               : input.name == kPixelsInput ? &pixels
                                                            : nullptr;
    if (slot == nullptr) return Invalid(what, "unknown input; expected IMAGE or PIXELS");
    if (*slot != nullptr) return Invalid(what, "given twice");
    for (const auto& [key, value] : input.parameters) {
      if (!IsTransportParameter(key)) {
        return Invalid(what, absl::StrCat("unknown parameter '", key.substr(0, 64), "'"));
      }
    }
    *slot = &input;
  }
  if (image != nullptr && pixels != nullptr) {
    return Invalid("inputs IMAGE and PIXELS", "send one of them, not both");
  }
  if (image == nullptr && pixels == nullptr) {
    return Invalid("inputs", "no input; send IMAGE (BYTES [N]) or PIXELS (UINT8 [N, H, W, 3])");
  }
  return image != nullptr ? AddEncodedImages(*image, max_images, job)
                          : AddPixelImages(*pixels, max_images, job);
}

}  // namespace

absl::Status CheckModelVersion(absl::string_view model, absl::string_view version) {
  if (version.empty() || version == kModelVersion) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("model '", model.substr(0, 64), "' has no version '",
                                          version.substr(0, 64), "'; its only version is 1"));
}

absl::StatusOr<MappedRequest> ToEmbedJob(InferenceRequest&& request,
                                         const pipeline::RequestLimits& limits) {
  MappedRequest mapped;
  pipeline::EmbedJob& job = mapped.job;
  job.settings.preprocess.decode = limits.default_decode;
  DType dtype = DType::kFloat32;
  for (const auto& [key, value] : request.parameters) {
    RETURN_IF_ERROR(ApplyParameter(key, value, limits, mapped, dtype));
  }
  ASSIGN_OR_RETURN(mapped.plan, PlanOutputs(request.outputs, dtype));
  job.settings.outputs = OutputSetOf(mapped.plan);
  job.settings.dtype = mapped.plan.run_dtype;
  job.model_name = std::move(request.model_name);
  job.request_id = std::move(request.id);
  auto owner = std::make_shared<const InferenceRequest>(std::move(request));
  RETURN_IF_ERROR(AddImages(owner->inputs, limits.max_images_per_request, job));
  job.received_bytes = HeldBytes(*owner) + static_cast<int64_t>(job.request_id.size());
  job.owner = std::move(owner);
  if (job.settings.outputs.patch_tokens && job.images.size() > 1 &&
      job.settings.preprocess.mode == ResizeMode::kKeepAspect) {
    return Invalid("output 'PATCH_TOKENS'",
                   "with resize keep_aspect each image has its own patch grid, which one "
                   "[N, P, D] tensor cannot hold; send one image per request, or resize fixed or "
                   "shorter_side_center_crop");
  }
  return mapped;
}

absl::StatusOr<std::string> Uint8FromValues(absl::string_view input,
                                            absl::Span<const int64_t> shape,
                                            absl::Span<const uint32_t> values) {
  const std::string what = absl::StrCat("input '", input.substr(0, 64), "'");
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim < 0)
      return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " has a negative dimension"));
    if (dim != 0 && count > static_cast<int64_t>(values.size()) / dim) {
      count = -1;  // more than the values: a mismatch
      break;
    }
    count *= dim;
  }
  if (count != static_cast<int64_t>(values.size())) {
    return Invalid(what, absl::StrCat("shape ", ShapeString(shape), " does not match the ",
                                      values.size(), " values of its contents"));
  }
  std::string bytes(values.size(), '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] > 255) {
      return Invalid(what, absl::StrCat("value ", values[i], " at ", i, " does not fit UINT8"));
    }
    bytes[i] = static_cast<char>(values[i]);
  }
  return bytes;
}

}  // namespace dinov3::kserve
