#include "server/service/embedding_service.h"

#include <memory>
#include <utility>

#include "server/service/call_context.h"
#include "server/service/dense_reactor.h"
#include "server/service/embed_reactor.h"
#include "server/service/proto_conversion.h"
#include "server/service/request_recorder.h"
#include "server/service/stream_reactor.h"

namespace dinov3::service {
namespace {

v1::ModelStatus::State ToProto(registry::ModelRegistry::State state) {
  switch (state) {
    case registry::ModelRegistry::State::kLoading:
      return v1::ModelStatus::LOADING;
    case registry::ModelRegistry::State::kReady:
      return v1::ModelStatus::READY;
    case registry::ModelRegistry::State::kUnloading:
      return v1::ModelStatus::UNLOADING;
    case registry::ModelRegistry::State::kFailed:
      return v1::ModelStatus::FAILED;
  }
  return v1::ModelStatus::STATE_UNSPECIFIED;
}

}  // namespace

void EmbeddingService::StartDraining() {
  draining_.store(true);
  streams_.DrainAll();
}

absl::Status EmbeddingService::Refused() const {
  if (!draining_.load()) return absl::OkStatus();
  return absl::UnavailableError("server is draining (shutting down); retry on another replica");
}

grpc::ServerUnaryReactor* EmbeddingService::Embed(grpc::CallbackServerContext* context,
                                                  const v1::EmbedRequest* request,
                                                  v1::EmbedResponse* response) {
  return StartEmbedCall(context, request, response, Refused(), env_);
}

grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* EmbeddingService::StreamEmbed(
    grpc::CallbackServerContext* context) {
  return StartStreamCall(context, Refused(), &streams_, env_);
}

grpc::ServerWriteReactor<v1::DenseChunk>* EmbeddingService::EmbedDense(
    grpc::CallbackServerContext* context, const v1::EmbedDenseRequest* request) {
  return StartDenseCall(context, request, Refused(), env_);
}

grpc::ServerUnaryReactor* EmbeddingService::GetModelInfo(grpc::CallbackServerContext* context,
                                                         const v1::GetModelInfoRequest* request,
                                                         v1::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RequestRecorder recorder(env_.metrics, "GetModelInfo", env_.models->Label(request->model()),
                           *context, "", 0);
  absl::Status status = Refused();
  if (status.ok()) {
    absl::StatusOr<std::shared_ptr<registry::ServedModel>> model =
        env_.models->Find(request->model());
    status = model.status();
    if (model.ok()) *response = MakeModelInfo((*model)->description());
  }
  recorder.Finish(status);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* EmbeddingService::ListModels(grpc::CallbackServerContext* context,
                                                       const v1::ListModelsRequest*,
                                                       v1::ListModelsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  for (const registry::ModelRegistry::Entry& entry : env_.models->List()) {
    v1::ModelStatus* status = response->add_models();
    status->set_name(entry.name);
    status->set_state(ToProto(entry.state));
    status->set_message(entry.message);
    status->set_is_default(entry.name == env_.models->default_name());
    if (entry.state == registry::ModelRegistry::State::kReady ||
        entry.state == registry::ModelRegistry::State::kUnloading) {
      *status->mutable_info() =
          entry.description ? MakeModelInfo(*entry.description) : v1::ModelInfo();
    }
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dinov3::service
