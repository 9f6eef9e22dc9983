#include "server/service/embedding_service.h"

#include <memory>
#include <utility>

#include "server/service/call_context.h"
#include "server/service/dense_reactor.h"
#include "server/service/embed_reactor.h"
#include "server/service/request_recorder.h"
#include "server/service/stream_reactor.h"

namespace dinov3::service {

void EmbeddingService::SetReady(EmbedPipeline* pipeline, v1::ModelInfo info) {
  {
    absl::MutexLock lock(&mu_);
    info_ = std::move(info);
  }
  pipeline_.store(pipeline);
}

void EmbeddingService::StartDraining() {
  draining_.store(true);
  streams_.DrainAll();
}

EmbedPipeline* EmbeddingService::Pipeline(absl::Status* why) const {
  if (draining_.load()) {
    *why = absl::UnavailableError("server is draining (shutting down); retry on another replica");
    return nullptr;
  }
  EmbedPipeline* pipeline = pipeline_.load();
  if (pipeline == nullptr) {
    *why = absl::UnavailableError("model is still loading; retry shortly");
  }
  return pipeline;
}

grpc::ServerUnaryReactor* EmbeddingService::Embed(grpc::CallbackServerContext* context,
                                                  const v1::EmbedRequest* request,
                                                  v1::EmbedResponse* response) {
  absl::Status why;
  EmbedPipeline* pipeline = Pipeline(&why);
  return StartEmbedCall(context, request, response, pipeline, why, env_);
}

grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* EmbeddingService::StreamEmbed(
    grpc::CallbackServerContext* context) {
  absl::Status why;
  EmbedPipeline* pipeline = Pipeline(&why);
  return StartStreamCall(context, pipeline, why, &streams_, env_);
}

grpc::ServerWriteReactor<v1::DenseChunk>* EmbeddingService::EmbedDense(
    grpc::CallbackServerContext* context, const v1::EmbedDenseRequest* request) {
  absl::Status why;
  EmbedPipeline* pipeline = Pipeline(&why);
  return StartDenseCall(context, request, pipeline, why, env_);
}

grpc::ServerUnaryReactor* EmbeddingService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const v1::GetModelInfoRequest*,
                                                         v1::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RequestRecorder recorder(env_.metrics, "GetModelInfo", *context, "", 0);
  absl::Status why;
  if (Pipeline(&why) == nullptr) {
    recorder.Finish(why);
    reactor->Finish(ToGrpcStatus(why));
    return reactor;
  }
  {
    absl::MutexLock lock(&mu_);
    *response = info_;
  }
  recorder.Finish(absl::OkStatus());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dinov3::service
