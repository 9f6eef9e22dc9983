// The StreamEmbed call: reads EmbedRequests as they come, runs each through the pipeline
// concurrently (reading pauses while 32 requests are computing or their answers unwritten, so a
// client that does not read cannot make the server buffer without bound) and writes each
// response as soon as it is ready, so responses may come out of order; each carries its
// request_id. A request that fails yields a response with `error` set; the stream goes on.
// The call finishes (OK) once the client half-closed and every response is written, or with
// CANCELLED if the client went away; never while a request is still in the pipeline.
// Deletes itself in OnDone.
#ifndef DINOV3_SERVER_SERVICE_STREAM_REACTOR_H_
#define DINOV3_SERVER_SERVICE_STREAM_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "dinov3/v1/embedding.pb.h"
#include "server/service/embed_pipeline.h"

namespace dinov3::service {

grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* StartStreamCall(
    grpc::CallbackServerContext* context, EmbedPipeline* pipeline,
    const absl::Status& unavailable);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_STREAM_REACTOR_H_
