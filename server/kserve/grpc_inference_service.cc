#include "server/kserve/grpc_inference_service.h"

#include <memory>

#include "server/kserve/grpc_tensors.h"
#include "server/kserve/infer_reactor.h"
#include "server/kserve/inference_tensors.h"
#include "server/service/proto_conversion.h"
#include "server/service/request_recorder.h"

namespace dinov3::kserve {

absl::Status GrpcInferenceService::Refused() const {
  if (!draining_.load()) return absl::OkStatus();
  return absl::UnavailableError("server is draining (shutting down); retry on another replica");
}

bool GrpcInferenceService::IsReady(absl::string_view name) const {
  if (draining_.load()) return false;
  const registry::ModelRegistry& models = *env_.models;
  return models.StateOf(name.empty() ? absl::string_view(models.default_name()) : name) ==
         registry::ModelRegistry::State::kReady;
}

grpc::ServerUnaryReactor* GrpcInferenceService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcInferenceService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(IsReady(""));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcInferenceService::ModelReady(
    grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  response->set_ready(CheckModelVersion(request->name(), request->version()).ok() &&
                      IsReady(request->name()));
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcInferenceService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  response->set_name(kServerName);
  response->set_version(DINOV3_VERSION);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GrpcInferenceService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  service::RequestRecorder recorder(env_.metrics, "ModelMetadata",
                                    env_.models->Label(request->name()), *context, "", 0);
  absl::Status status = Refused();
  if (status.ok()) {
    absl::StatusOr<std::shared_ptr<registry::ServedModel>> model =
        env_.models->Find(request->name());
    status = model.status();
    if (status.ok()) status = CheckModelVersion(request->name(), request->version());
    if (status.ok())
      ToProto(MakeModelMetadata((*model)->name(), (*model)->description()), response);
  }
  recorder.Finish(status);
  reactor->Finish(service::ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* GrpcInferenceService::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  return StartInferCall(context, request, response, Refused(), env_);
}

}  // namespace dinov3::kserve
