// The Open Inference Protocol's REST encoding (KServe v2 HTTP/JSON) of an inference request and
// response, including the binary tensor data extension that tritonclient uses by default:
//   - request: with the header Inference-Header-Content-Length: L, the body's first L bytes are
//     the JSON request and the rest the binary data of the inputs that carry the parameter
//     binary_data_size, in input order (a BYTES element there is a 4-byte little-endian length
//     and its bytes); without it the whole body is JSON. JSON data may be nested arrays. An
//     IMAGE element given in JSON is a base64 string (optionally a data URL): JSON strings cannot
//     carry an image file's bytes.
//   - response: an output goes in binary when its requested output has parameters.binary_data
//     true, or, for outputs without that parameter, when the request's parameters.
//     binary_data_output is true; then the answer is the JSON header (its length in
//     Inference-Header-Content-Length) followed by those outputs' bytes, and each such output
//     has parameters.binary_data_size instead of data. Other outputs carry data as a flat JSON
//     array of numbers (FP16 / BF16 values written as the numbers they are).
// Errors: InvalidArgument naming the field, input or output (offsets and sizes are checked
// against the body before anything is copied). Thread-safe: plain functions.
#ifndef DINOV3_SERVER_KSERVE_REST_JSON_H_
#define DINOV3_SERVER_KSERVE_REST_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/kserve/inference_tensors.h"

namespace dinov3::kserve {

struct RestInferRequest {
  InferenceRequest request;
  // How the answer encodes each output: name → binary (outputs not listed follow the default).
  std::map<std::string, bool, std::less<>> binary_outputs;
  bool binary_default = false;
};

// `header_length`: the value of Inference-Header-Content-Length, nullptr when absent.
absl::StatusOr<RestInferRequest> ParseRestInferRequest(std::string body,
                                                       const std::string* header_length,
                                                       int max_json_depth);

struct RestBody {
  std::string body;
  std::string content_type;
  int64_t header_length = -1;  // ≥ 0: send Inference-Header-Content-Length
};

RestBody SerializeRestInferResponse(InferenceResponse&& response, const RestInferRequest& encoding);

}  // namespace dinov3::kserve

#endif  // DINOV3_SERVER_KSERVE_REST_JSON_H_
