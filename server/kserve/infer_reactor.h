// The ModelInfer call of the Open Inference Protocol over gRPC: the request's tensors become a
// dinov3.v1 EmbedRequest (inference_tensors.h) that runs through the served model's pipeline
// exactly like an Embed call (admission and memory budget, batching with other calls'
// images, priorities, the work deadline, cancellation, metrics with method "ModelInfer" and
// the access log), and its answer becomes the output tensors, in raw_output_contents.
// The work deadline is the earliest of the client's, server.max_call_seconds and the request's
// `timeout` parameter. The memory reservation is held until gRPC is done with the call.
//
// Ownership: the handler takes the tensor bytes out of the request message gRPC hands it
// (gRPC allocates that message for the call and reads it no more once the handler runs), so
// the call holds one copy of the images, the one the memory footprint counts. Deletes itself
// in OnDone.
#ifndef DINOV3_SERVER_KSERVE_INFER_REACTOR_H_
#define DINOV3_SERVER_KSERVE_INFER_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "inference/grpc_service.pb.h"
#include "server/service/call_context.h"

namespace dinov3::kserve {

// Starts the call on the model request->model_name() names in env.models; gRPC owns the
// returned reactor. A `refused` status that is not OK (the server is draining) answers the
// call with it at once.
grpc::ServerUnaryReactor* StartInferCall(grpc::CallbackServerContext* context,
                                         const inference::ModelInferRequest* request,
                                         inference::ModelInferResponse* response,
                                         const absl::Status& refused,
                                         const service::CallEnvironment& env);

}  // namespace dinov3::kserve

#endif  // DINOV3_SERVER_KSERVE_INFER_REACTOR_H_
