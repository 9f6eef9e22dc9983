// The Open Inference Protocol (KServe v2) in plain C++, shared by its front doors (gRPC and
// REST): an inference request and response as tensors, and their mapping onto the pipeline's
// EmbedJob / EmbedResult (server/pipeline), and a served model's metadata from the registry's
// ModelDescription. No gRPC and no protobuf types here.
//
// Tensors of the DINOv3 models (ModelMetadata describes them):
//   inputs, exactly one of
//     IMAGE   BYTES [N]          each element one encoded image file (JPEG, PNG, WebP, BMP)
//     PIXELS  UINT8 [N, H, W, 3] RGB, row-major
//   outputs (only those requested; none requested = CLS and POOLED, in that order)
//     CLS [N, D], POOLED [N, D], PATCH_TOKENS [N, P, D] (parameters grid_height, grid_width),
//     REGISTERS [N, R, D]; datatype FP32 (default), FP16 or BF16.
// Request parameters (any other is InvalidArgument; the transport parameters of the REST binary
// extension, binary_data_output / binary_data / binary_data_size, are the front door's and are
// ignored here):
//   datatype      string "FP32" | "FP16" | "BF16": every output's; a requested output's own
//                 `datatype` parameter overrides it for that output. Values equal the native
//                 API's in that dtype: one dtype for all outputs runs in it; mixed dtypes run in
//                 float32 and convert (float_convert.h, bit-exact to the engine's conversion).
//   resize        string "fixed" | "shorter_side_center_crop" | "keep_aspect" (or the native
//                 enum names RESIZE_FIXED, RESIZE_SHORTER_SIDE_CENTER_CROP, RESIZE_KEEP_ASPECT)
//   size          int: height and width (Preprocess.height/width); `height`, `width` set one
//   max_patches   int (keep_aspect)
//   decode        string "server_default" | "exact" | "fast" (or DECODE_* names)
//   l2_normalize  bool
//   priority      "HIGH" | "NORMAL" | "LOW" (or PRIORITY_* names), or the native enum's ints
//                 0 = NORMAL, 1 = HIGH, 2 = LOW (Triton's uint64 priority: 0 default, 1 highest)
//   timeout       int, microseconds (as Triton): the work deadline, together with the client's
//                 deadline and server.max_call_seconds (the earliest wins); 0 = none
// The model is the served model's name (ModelRegistry; "" = the default model); its version
// "" or "1" (anything else NotFound).
//
// Errors: InvalidArgument naming the input, output or parameter and the problem. Every size
// check against the data's byte count is made before anything sized by the client's numbers is
// allocated. Plain functions; thread-safe.
#ifndef DINOV3_SERVER_KSERVE_INFERENCE_TENSORS_H_
#define DINOV3_SERVER_KSERVE_INFERENCE_TENSORS_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/common/types.h"
#include "server/pipeline/embed_job.h"
#include "server/pipeline/embed_result.h"
#include "server/pipeline/request_limits.h"
#include "server/registry/model_description.h"

namespace dinov3::kserve {

inline constexpr char kImageInput[] = "IMAGE";
inline constexpr char kPixelsInput[] = "PIXELS";
inline constexpr char kModelVersion[] = "1";
inline constexpr char kPlatform[] = "pytorch_libtorch";
inline constexpr char kServerName[] = "dinov3-server";

using ParameterValue = std::variant<bool, int64_t, std::string, double>;
using Parameters = std::map<std::string, ParameterValue, std::less<>>;

struct InputTensor {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  Parameters parameters;
  // The data: with has_raw, `raw` holds the elements flattened row-major, little-endian (a
  // BYTES element: a 4-byte little-endian length, then its bytes); otherwise a BYTES tensor's
  // elements are in `elements` (typed / JSON form).
  bool has_raw = false;
  std::string raw;
  std::vector<std::string> elements;
};

struct RequestedOutput {
  std::string name;
  Parameters parameters;
};

struct InferenceRequest {
  std::string model_name;
  std::string model_version;
  std::string id;
  Parameters parameters;
  std::vector<InputTensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty = CLS, POOLED
};

struct OutputTensor {
  std::string name;
  std::string datatype;  // FP32, FP16, BF16
  std::vector<int64_t> shape;
  Parameters parameters;
  std::string data;  // row-major, little-endian
};

struct InferenceResponse {
  std::string model_name;
  std::string model_version;
  std::string id;
  std::vector<OutputTensor> outputs;
};

// Which outputs a request asked for, in the order of the answer, each in its dtype, and the
// dtype the request runs in.
struct OutputPlan {
  struct Entry {
    pipeline::OutputKind output = pipeline::OutputKind::kCls;
    DType dtype = DType::kFloat32;
  };
  std::vector<Entry> entries;
  DType run_dtype = DType::kFloat32;
};

struct MappedRequest {
  pipeline::EmbedJob job;  // its owner: the InferenceRequest, whose buffers the images view
  OutputPlan plan;
  absl::Duration timeout = absl::InfiniteDuration();  // the `timeout` parameter
};

// NotFound unless `version` is "" or "1".
absl::Status CheckModelVersion(absl::string_view model, absl::string_view version);

// The pipeline job of `request`, which it takes: the job owns it and its images view its
// buffers (no copy). `limits` gives the images per request (refused before anything is
// allocated for the images) and the server's decode mode. The job's answer_size is the
// binary answer's (kResponseCopies); a front door that answers otherwise sets its own.
absl::StatusOr<MappedRequest> ToEmbedJob(InferenceRequest&& request,
                                         const pipeline::RequestLimits& limits);

// The output tensors of `result` (whose data it takes) as `plan` asks for them; the model
// name and id come from the result, the version is "1".
absl::StatusOr<InferenceResponse> ToInferenceResponse(pipeline::EmbedResult&& result,
                                                      const OutputPlan& plan);

// The bytes of a UINT8 tensor given as values (typed contents), after checking that their
// count matches `shape` and each value fits in 8 bits.
absl::StatusOr<std::string> Uint8FromValues(absl::string_view input,
                                            absl::Span<const int64_t> shape,
                                            absl::Span<const uint32_t> values);

struct TensorMetadata {
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;  // -1 = variable
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;
  std::string platform;
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

// The tensors above, with the model's embedding dimension and register count.
ModelMetadata MakeModelMetadata(const std::string& name,
                                const registry::ModelDescription& description);

// "CLS", "POOLED", "PATCH_TOKENS", "REGISTERS".
const char* OutputName(pipeline::OutputKind output);

// "FP32", "FP16", "BF16".
const char* DatatypeName(DType dtype);

}  // namespace dinov3::kserve

#endif  // DINOV3_SERVER_KSERVE_INFERENCE_TENSORS_H_
