// The dinov3.v1.ModelAdmin callback handlers: LoadModel / UnloadModel, run by a ModelLifecycle
// on one worker thread of their own (handlers never block; one operation at a time, the others
// wait in a bounded backlog: RESOURCE_EXHAUSTED when it is full). Every call needs an admin key
// in "authorization: Bearer <key>" (compared in constant time): UNAUTHENTICATED without one,
// PERMISSION_DENIED with another. The server registers this service only with admin keys, and
// the API-key check of the other services leaves its calls to it (api_key_auth.h).
// The lifecycle and metrics must outlive the service; destroying it waits for the operation
// in progress and those waiting. Thread-safe.
#ifndef DINOV3_SERVER_SERVICE_MODEL_ADMIN_SERVICE_H_
#define DINOV3_SERVER_SERVICE_MODEL_ADMIN_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "dinov3/v1/embedding.grpc.pb.h"
#include "server/metrics/server_metrics.h"
#include "server/pipeline/thread_pool.h"
#include "server/registry/model_lifecycle.h"

namespace dinov3::service {

// The path prefix of the service's methods (exempt from the API-key check).
inline constexpr char kModelAdminPathPrefix[] = "/dinov3.v1.ModelAdmin/";

class ModelAdminService final : public v1::ModelAdmin::CallbackService {
 public:
  ModelAdminService(std::vector<std::string> admin_keys, registry::ModelLifecycle* lifecycle,
                    const registry::ModelRegistry* registry, metrics::ServerMetrics* metrics);

  grpc::ServerUnaryReactor* LoadModel(grpc::CallbackServerContext* context,
                                      const v1::LoadModelRequest* request,
                                      v1::LoadModelResponse* response) override;
  grpc::ServerUnaryReactor* UnloadModel(grpc::CallbackServerContext* context,
                                        const v1::UnloadModelRequest* request,
                                        v1::UnloadModelResponse* response) override;

 private:
  // OK, or UNAUTHENTICATED / PERMISSION_DENIED.
  absl::Status Authorize(const grpc::CallbackServerContext& context) const;
  // Runs `work` on the admin thread and finishes `reactor` with its status, recording the
  // call (method, model name) in the metrics and the access log.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context, const char* method,
                                const std::string& model,
                                absl::AnyInvocable<absl::Status() &&> work);

  const std::vector<std::string> admin_keys_;
  registry::ModelLifecycle* const lifecycle_;
  const registry::ModelRegistry* const registry_;
  metrics::ServerMetrics* const metrics_;
  pipeline::ThreadPool worker_;  // last: destroyed (joined) first
};

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_MODEL_ADMIN_SERVICE_H_
