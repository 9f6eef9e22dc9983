#include "server/service/model_admin_service.h"

#include <memory>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/common/secret_file.h"
#include "server/service/proto_conversion.h"
#include "server/service/request_recorder.h"

namespace dinov3::service {
namespace {

constexpr int kBacklog = 16;  // admin calls waiting for the one in progress

v1::ModelStatus StatusOf(const registry::ModelRegistry& registry, const std::string& name) {
  v1::ModelStatus status;
  status.set_name(name);
  for (const registry::ModelRegistry::Entry& entry : registry.List()) {
    if (entry.name != name) continue;
    status.set_state(entry.state == registry::ModelRegistry::State::kReady
                         ? v1::ModelStatus::READY
                         : v1::ModelStatus::LOADING);
    status.set_is_default(name == registry.default_name());
    *status.mutable_info() =
        entry.description ? MakeModelInfo(*entry.description) : v1::ModelInfo();
  }
  return status;
}

}  // namespace

ModelAdminService::ModelAdminService(std::vector<std::string> admin_keys,
                                     registry::ModelLifecycle* lifecycle,
                                     const registry::ModelRegistry* registry,
                                     metrics::ServerMetrics* metrics)
    : admin_keys_(std::move(admin_keys)),
      lifecycle_(lifecycle),
      registry_(registry),
      metrics_(metrics),
      worker_(1, kBacklog) {}

absl::Status ModelAdminService::Authorize(const grpc::CallbackServerContext& context) const {
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find("authorization");
  if (header == metadata.end()) {
    return absl::UnauthenticatedError(
        "ModelAdmin needs the metadata 'authorization: Bearer <admin key>'");
  }
  absl::string_view key(header->second.data(), header->second.size());
  if (!absl::ConsumePrefix(&key, "Bearer ") || !MatchesAnySecret(admin_keys_, key)) {
    return absl::PermissionDeniedError(
        "ModelAdmin needs an admin key (admin.api_keys_file); API keys cannot load or unload "
        "models");
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ModelAdminService::Run(grpc::CallbackServerContext* context,
                                                 const char* method, const std::string& model,
                                                 absl::AnyInvocable<absl::Status() &&> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto recorder =
      std::make_shared<RequestRecorder>(metrics_, method, registry_->Label(model), *context, "", 0);
  if (absl::Status denied = Authorize(*context); !denied.ok()) {
    recorder->Finish(denied);
    reactor->Finish(ToGrpcStatus(denied));
    return reactor;
  }
  pipeline::ThreadPool::Job job = [context, reactor, recorder, work = std::move(work)]() mutable {
    // A call whose client gave up while it waited its turn is not run.
    const absl::Status status =
        context->IsCancelled()
            ? absl::CancelledError("the client cancelled before the call's turn came")
            : std::move(work)();
    recorder->Finish(status);
    reactor->Finish(ToGrpcStatus(status));
  };
  if (!worker_.TrySubmit(job)) {
    const absl::Status busy = absl::ResourceExhaustedError(
        "too many ModelAdmin calls are waiting for the one in progress; retry later");
    recorder->Finish(busy);
    reactor->Finish(ToGrpcStatus(busy));
  }
  return reactor;
}

grpc::ServerUnaryReactor* ModelAdminService::LoadModel(grpc::CallbackServerContext* context,
                                                       const v1::LoadModelRequest* request,
                                                       v1::LoadModelResponse* response) {
  const std::string name = request->name();
  return Run(context, "LoadModel", name, [this, name, response]() -> absl::Status {
    absl::StatusOr<registry::ModelLifecycle::Loaded> loaded = lifecycle_->Load(name);
    if (!loaded.ok()) return loaded.status();
    *response->mutable_model() = StatusOf(*registry_, name);
    response->set_replaced(loaded->replaced);
    response->set_switch_seconds(loaded->switch_seconds);
    response->set_retire_seconds(loaded->retire_seconds);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ModelAdminService::UnloadModel(grpc::CallbackServerContext* context,
                                                         const v1::UnloadModelRequest* request,
                                                         v1::UnloadModelResponse* response) {
  const std::string name = request->name();
  return Run(context, "UnloadModel", name, [this, name, response]() -> absl::Status {
    absl::StatusOr<double> seconds = lifecycle_->Unload(name);
    if (!seconds.ok()) return seconds.status();
    response->set_seconds(*seconds);
    return absl::OkStatus();
  });
}

}  // namespace dinov3::service
