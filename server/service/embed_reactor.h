// The Embed call: admits the request (validation, memory footprint reserved in the budget),
// runs it through the pipeline and answers once. The reservation is held until gRPC is done
// with the call (OnDone: the answer written, or the call cancelled), so an answer that a
// client does not read stays counted in the budget (shrunk to the request and the answer once
// it is computed). The work's deadline is the client's or server.max_call_seconds, whichever
// comes first; an answer still not delivered a second later cancels the call.
// Deletes itself in OnDone.
#ifndef DINOV3_SERVER_SERVICE_EMBED_REACTOR_H_
#define DINOV3_SERVER_SERVICE_EMBED_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "dinov3/v1/embedding.pb.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/service/call_context.h"

namespace dinov3::service {

// Starts the call on the model that request->model() names in env.models; gRPC owns the
// returned reactor. A `refused` status that is not OK (the server is draining) answers the
// call with it at once. The call is recorded in env.metrics.
grpc::ServerUnaryReactor* StartEmbedCall(grpc::CallbackServerContext* context,
                                         const v1::EmbedRequest* request,
                                         v1::EmbedResponse* response, const absl::Status& refused,
                                         const CallEnvironment& env);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_EMBED_REACTOR_H_
