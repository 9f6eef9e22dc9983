// The gRPC messages of the Open Inference Protocol (package inference) to and from the plain
// structs of inference_tensors.h. The request's tensor data is moved, not copied: raw contents
// and BYTES elements leave the message (a UINT8 tensor's typed values become bytes).
//
// Errors: InvalidArgument naming the input or parameter (raw_input_contents not one per input,
// raw and typed contents mixed, a parameter without a value, typed UINT8 values that do not
// fit or do not match the shape). Plain functions; thread-safe.
#ifndef DINOV3_SERVER_KSERVE_GRPC_TENSORS_H_
#define DINOV3_SERVER_KSERVE_GRPC_TENSORS_H_

#include "absl/status/statusor.h"
#include "inference/grpc_service.pb.h"
#include "server/kserve/inference_tensors.h"

namespace dinov3::kserve {

// Takes the data out of `request` (left without its tensor bytes).
absl::StatusOr<InferenceRequest> TakeInferRequest(inference::ModelInferRequest& request);

// Every output's data goes into raw_output_contents, in the order of outputs.
void MoveToProto(InferenceResponse&& response, inference::ModelInferResponse* out);

void ToProto(const ModelMetadata& metadata, inference::ModelMetadataResponse* out);

}  // namespace dinov3::kserve

#endif  // DINOV3_SERVER_KSERVE_GRPC_TENSORS_H_
