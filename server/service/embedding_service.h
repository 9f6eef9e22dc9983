// The dinov3.v1.EmbeddingService callback handlers. Handlers never block: they validate,
// hand the work to the EmbedPipeline and return a reactor that is finished by the pipeline's
// completion callback. Until SetReady (model loaded and warm) and again after StartDraining,
// every call gets UNAVAILABLE with the reason; StartDraining also ends open streams once their
// accepted requests are answered. Thread-safe.
#ifndef DINOV3_SERVER_SERVICE_EMBEDDING_SERVICE_H_
#define DINOV3_SERVER_SERVICE_EMBEDDING_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>

#include "absl/synchronization/mutex.h"
#include "dinov3/v1/embedding.grpc.pb.h"
#include "server/service/call_context.h"
#include "server/service/call_watchdog.h"
#include "server/service/embed_pipeline.h"
#include "server/service/stream_reactor.h"

namespace dinov3::service {

class EmbeddingService final : public v1::EmbeddingService::CallbackService {
 public:
  // Every request is recorded in `metrics` (RequestRecorder), which must outlive the service.
  // `max_call` and `max_stream_buffered_bytes`: see CallEnvironment (call_context.h).
  EmbeddingService(metrics::ServerMetrics* metrics, absl::Duration max_call,
                   int64_t max_stream_buffered_bytes)
      : env_{metrics, &watchdog_, max_call, max_stream_buffered_bytes} {}

  // `pipeline` must stay valid until the gRPC server has shut down.
  void SetReady(EmbedPipeline* pipeline, v1::ModelInfo info);
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

 private:
  // The pipeline, or null with `why` set when calls must be refused.
  EmbedPipeline* Pipeline(absl::Status* why) const;

  CallWatchdog watchdog_;
  const CallEnvironment env_;
  std::atomic<EmbedPipeline*> pipeline_{nullptr};
  std::atomic<bool> draining_{false};
  StreamRegistry streams_;
  mutable absl::Mutex mu_;
  v1::ModelInfo info_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_EMBEDDING_SERVICE_H_
