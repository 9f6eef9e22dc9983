// The dinov3.v1.EmbeddingService callback handlers. Handlers never block: they look the
// request's model up in the ModelRegistry, hand the work to its EmbedPipeline and return a
// reactor that is finished by the pipeline's completion callback. A model that is still loading
// answers UNAVAILABLE, an unknown one NOT_FOUND (ModelRegistry::Find). After StartDraining
// every call gets UNAVAILABLE, and open streams end once their accepted requests are answered.
// Thread-safe.
#ifndef DINOV3_SERVER_SERVICE_EMBEDDING_SERVICE_H_
#define DINOV3_SERVER_SERVICE_EMBEDDING_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "dinov3/v1/embedding.grpc.pb.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/registry/model_registry.h"
#include "server/service/call_context.h"
#include "server/service/call_watchdog.h"
#include "server/service/stream_reactor.h"

namespace dinov3::service {

class EmbeddingService final : public v1::EmbeddingService::CallbackService {
 public:
  // Every request is recorded in `metrics` (RequestRecorder). `metrics` and `models` must
  // outlive the service. `max_call` and `max_stream_buffered_bytes`: see CallEnvironment
  // (call_context.h).
  EmbeddingService(metrics::ServerMetrics* metrics, const registry::ModelRegistry* models,
                   absl::Duration max_call, int64_t max_stream_buffered_bytes)
      : env_{metrics, &watchdog_, models, max_call, max_stream_buffered_bytes} {}

  void StartDraining();

  grpc::ServerUnaryReactor* Embed(grpc::CallbackServerContext* context,
                                  const v1::EmbedRequest* request,
                                  v1::EmbedResponse* response) override;
  grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* StreamEmbed(
      grpc::CallbackServerContext* context) override;
  grpc::ServerWriteReactor<v1::DenseChunk>* EmbedDense(
      grpc::CallbackServerContext* context, const v1::EmbedDenseRequest* request) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  // UNAVAILABLE while draining, else OK.
  absl::Status Refused() const;

  CallWatchdog watchdog_;
  const CallEnvironment env_;
  std::atomic<bool> draining_{false};
  StreamRegistry streams_;
};

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_EMBEDDING_SERVICE_H_
