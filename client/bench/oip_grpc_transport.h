// Transport over the Open Inference Protocol (KServe v2) gRPC API: one unary
// inference.GRPCInferenceService/ModelInfer per call, synchronous stub, one channel shared by
// all workers (as grpc_transport.h). Each request, built once up front, names --model (""
// = the server's default), carries images_per_request copies of an image as IMAGE (BYTES [N],
// raw_input_contents, each element a 4-byte little-endian length and the file's bytes) or, for
// the generated raw image, PIXELS (UINT8 [N,H,W,3]), asks for the outputs (CLS, POOLED,
// PATCH_TOKENS, REGISTERS; none asked = CLS and POOLED) each with parameters.datatype FP32,
// FP16 or BF16, and carries the resize as int parameters height and width.
// A call succeeds when its status is OK and every asked output is answered with its datatype,
// a shape [N, ...] and exactly the bytes that shape holds (raw_output_contents, or FP32 typed
// contents); its error is otherwise the gRPC status code name, or "BAD_RESPONSE".
#ifndef DINOV3_CLIENT_BENCH_OIP_GRPC_TRANSPORT_H_
#define DINOV3_CLIENT_BENCH_OIP_GRPC_TRANSPORT_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "client/bench/grpc_transport.h"
#include "client/bench/request_set.h"
#include "client/bench/transport.h"
#include "inference/grpc_service.pb.h"

namespace dinov3::bench {

// One request per image and model share (request_set.h); InvalidArgument as MakeOipInput.
absl::StatusOr<std::vector<inference::ModelInferRequest>> MakeOipGrpcRequests(
    const RequestSpec& spec, const std::vector<v1::Image>& images);

// Calls cycle through `requests`.
std::unique_ptr<Transport> MakeOipGrpcTransport(const GrpcTarget& target,
                                                std::vector<inference::ModelInferRequest> requests);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_OIP_GRPC_TRANSPORT_H_
