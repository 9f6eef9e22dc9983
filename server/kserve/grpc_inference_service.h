// inference.GRPCInferenceService, the Open Inference Protocol (KServe v2) over gRPC, served on
// the same port as dinov3.v1. Callback handlers that never block:
//   ServerLive      true while the process answers.
//   ServerReady     the default model is ready and the server is not draining.
//   ModelReady      that model (its served name; "" = the default) is ready, its version is
//                   "" or "1" and the server is not draining; false otherwise (never an error).
//   ServerMetadata  name dinov3-server, the server's version, no protocol extensions.
//   ModelMetadata   the model's tensors (inference_tensors.h); NOT_FOUND for an unknown model
//                   or version, UNAVAILABLE while it loads or the server drains.
//   ModelInfer      infer_reactor.h.
// ModelInfer and ModelMetadata are recorded in the metrics and the access log (methods
// "ModelInfer", "ModelMetadata"). The other RPCs of the protocol are not served
// (UNIMPLEMENTED). Thread-safe; `metrics` and `models` must outlive the service.
#ifndef DINOV3_SERVER_KSERVE_GRPC_INFERENCE_SERVICE_H_
#define DINOV3_SERVER_KSERVE_GRPC_INFERENCE_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "absl/time/time.h"
#include "inference/grpc_service.grpc.pb.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/model_registry.h"
#include "server/service/call_context.h"
#include "server/service/call_watchdog.h"

namespace dinov3::kserve {

class GrpcInferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // `max_call`: server.max_call_seconds (service::WorkDeadline).
  GrpcInferenceService(metrics::ServerMetrics* metrics, const registry::ModelRegistry* models,
                       absl::Duration max_call)
      : env_{.metrics = metrics, .watchdog = &watchdog_, .models = models, .max_call = max_call} {}

  // From now on readiness is false and every call but ServerLive, ServerReady, ModelReady and
  // ServerMetadata gets UNAVAILABLE.
  void StartDraining() { draining_.store(true); }

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* context,
                                           const inference::ServerMetadataRequest* request,
                                           inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* context,
                                          const inference::ModelMetadataRequest* request,
                                          inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;

 private:
  // UNAVAILABLE while draining, else OK.
  absl::Status Refused() const;
  // Whether `name` ("" = the default) is ready to serve.
  bool IsReady(absl::string_view name) const;

  service::CallWatchdog watchdog_;
  const service::CallEnvironment env_;
  std::atomic<bool> draining_{false};
};

}  // namespace dinov3::kserve

#endif  // DINOV3_SERVER_KSERVE_GRPC_INFERENCE_SERVICE_H_
