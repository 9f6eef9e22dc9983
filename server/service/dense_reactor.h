// The EmbedDense call: one image through the pipeline (patch tokens only), then its [grid_h,
// grid_w, D] patch features written as DenseChunks of whole patch rows, one write in flight at
// a time (gRPC flow control applies back-pressure). Every chunk repeats the header (grid size,
// dim, dtype); the first also carries the timing. Admission and the memory reservation, held
// until OnDone, and the server-side time limit are as for Embed (embed_reactor.h). Deletes
// itself in OnDone.
#ifndef DINOV3_SERVER_SERVICE_DENSE_REACTOR_H_
#define DINOV3_SERVER_SERVICE_DENSE_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "dinov3/v1/embedding.pb.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/service/call_context.h"

namespace dinov3::service {

// Starts the call on the model that request->model() names in env.models; gRPC owns the
// returned reactor. A `refused` status that is not OK (the server is draining) answers the
// call with it at once. The call is recorded in env.metrics.
grpc::ServerWriteReactor<v1::DenseChunk>* StartDenseCall(grpc::CallbackServerContext* context,
                                                         const v1::EmbedDenseRequest* request,
                                                         const absl::Status& refused,
                                                         const CallEnvironment& env);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_DENSE_REACTOR_H_
