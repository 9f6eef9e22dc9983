// Transport over the Open Inference Protocol (KServe v2) REST API with its binary tensor
// extension both ways: each call POSTs /v2/models/{model}/infer (http_transport.h: HTTP/1.1
// keep-alive, one connection per worker). The body, built once up front, is a JSON header (its
// length in Inference-Header-Content-Length) followed by the input's bytes: IMAGE (BYTES [N],
// each element a 4-byte little-endian length and the file's bytes) or, for the generated raw
// image, PIXELS (UINT8 [N,H,W,3]), with parameters.binary_data_size; every asked output (CLS,
// POOLED, PATCH_TOKENS, REGISTERS; none asked = CLS and POOLED) has parameters {"datatype":
// FP32|FP16|BF16, "binary_data": true}; the resize goes as int parameters height and width.
// The path needs the model's name: `spec.models` must name one or more (InvalidArgument).
// A call succeeds on a 200 answer whose JSON header lists every asked output with its
// datatype, a shape [N, ...] and a binary_data_size of exactly the bytes that shape holds, and
// whose binary part is exactly the sum of those sizes; otherwise its error is "HTTP_<status>",
// "CONNECTION" or "BAD_RESPONSE".
#ifndef DINOV3_CLIENT_BENCH_OIP_REST_TRANSPORT_H_
#define DINOV3_CLIENT_BENCH_OIP_REST_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/bench/http_transport.h"
#include "client/bench/oip_tensors.h"
#include "client/bench/request_set.h"
#include "client/bench/transport.h"

namespace dinov3::bench {

// One request per image and model share (request_set.h).
absl::StatusOr<std::vector<HttpRequest>> MakeOipRestRequests(const RequestSpec& spec,
                                                             const std::vector<v1::Image>& images);

// "" when a 200 answer (`head`, `body`) carries each of `asked` for `images` images in binary,
// kBadResponse otherwise. Exposed for tests.
std::string CheckOipRestAnswer(const std::vector<OipOutput>& asked, int images,
                               const ResponseHead& head, const std::string& body);

// Calls cycle through MakeOipRestRequests(spec, images); InvalidArgument as that.
absl::StatusOr<std::unique_ptr<Transport>> MakeOipRestTransport(
    const HttpTarget& target, const RequestSpec& spec, const std::vector<v1::Image>& images);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_OIP_REST_TRANSPORT_H_
