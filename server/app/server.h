// The whole server: gRPC (EmbeddingService, health, reflection), the preprocess pool and the
// served models (each with its own queue and instances, served_model.h) in a ModelRegistry,
// wired together and started in the order that keeps health truthful: listen with health
// NOT_SERVING, load and warm up every model, then SERVING. Health: the overall service ("" and
// dinov3.v1.EmbeddingService) follows the default model; each model also has its own entry
// under its name.
// Metrics (server/metrics) are served on their own HTTP address from Listen on, so start-up can
// be watched, until the server is destroyed. The HTTP front doors (OpenAI embeddings) listen
// from Listen on too; until a model is ready they answer 503.
// Shutdown drains: NOT_SERVING, new calls refused with UNAVAILABLE, accepted calls and their
// queued images finish (up to drain_timeout; then calls are cancelled and images still waiting
// are answered UNAVAILABLE), then the batcher and pool stop.
#ifndef DINOV3_SERVER_APP_SERVER_H_
#define DINOV3_SERVER_APP_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/batching/batcher.h"
#include "server/common/memory_budget.h"
#include "server/common/usable_cpus.h"
#include "server/http/http_router.h"
#include "server/http/http_server.h"
#include "server/kserve/grpc_inference_service.h"
#include "server/kserve/rest_front_door.h"
#include "server/metrics/server_metrics.h"
#include "server/openai/openai_front_door.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/pipeline/thread_pool.h"
#include "server/registry/model_lifecycle.h"
#include "server/registry/model_registry.h"
#include "server/registry/served_model.h"
#include "server/service/embedding_service.h"
#include "server/service/model_admin_service.h"
#include "server/service/proto_conversion.h"
#include "server/service/transport_security.h"

namespace dinov3::service {

struct ServerOptions {
  // The served models, in order; each name once (config::ResolveModels).
  std::vector<registry::ServedModelOptions> models;
  std::string default_model;  // "" = the first
  // The ModelAdmin RPCs (model_admin_service.h): served when admin_keys_file is set.
  std::string admin_keys_file;
  std::string model_repository;  // LoadModel's folder ("" = LoadModel refused)
  absl::Duration unload_grace = absl::Seconds(30);
  // The settings of a model LoadModel loads as `name` from `path` (empty: defaults).
  std::function<registry::ServedModelOptions(const std::string& name, const std::string& path)>
      options_for_load;
  std::string listen = "127.0.0.1:50051";  // port 0 picks a free port (see port())
  TransportSecurityOptions security;       // TLS, mutual TLS, API keys (transport_security.h)
  std::string metrics_listen;  // "" = no metrics endpoint; port 0 picks one (metrics_port())
  std::string metrics_basic_auth_file;  // "user:password" lines; "" = /metrics is open
  // The HTTP front doors (OpenAI embeddings): served when http_enabled, on http.listen (port 0
  // picks one, http_port()). TLS files and API keys come from `security`, the body limit from
  // limits.max_receive_message_bytes.
  bool http_enabled = false;
  http::HttpServerOptions http;
  int max_json_depth = 32;
  pipeline::RequestLimits limits;
  int preprocess_threads = 0;  // 0 = the usable CPUs (affinity mask, cgroup CPU quota)
  int preprocess_backlog = 1024;
  // What accepted requests may make the server hold (MemoryBudget; limits.memory_budget_bytes,
  // already resolved: > 0), and one StreamEmbed stream's share of it.
  int64_t memory_budget_bytes = int64_t{4} << 30;
  int64_t max_stream_buffered_bytes = int64_t{256} << 20;
  // gRPC's own buffers (grpc::ResourceQuota) and streams per connection.
  int64_t grpc_memory_bytes = int64_t{1} << 30;
  int max_concurrent_streams = 100;
  // The longest a call's work may take and an answer may stay unread (CallWatchdog).
  absl::Duration max_call = absl::Seconds(300);
  // Called once, when every model is warm, right before calls are accepted (may be empty).
  std::function<void()> before_accepting;
  absl::Duration drain_timeout = absl::Seconds(10);
  // Connections get GOAWAY after max_connection_age (zero: never) and are closed once their
  // calls finish or the grace has passed; clients then reconnect, and rebalance.
  absl::Duration max_connection_age = absl::ZeroDuration();
  absl::Duration max_connection_age_grace = absl::Seconds(30);
  // The server pings a connection idle for keepalive_time and closes it when the ping is not
  // answered within keepalive_timeout. Clients may ping every min_client_ping_interval, also
  // with no call open; faster pingers get GOAWAY (too_many_pings).
  absl::Duration keepalive_time = absl::Seconds(60);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  absl::Duration min_client_ping_interval = absl::Seconds(10);
};

// The name under which the health service reports the embedding service.
inline constexpr char kServiceName[] = "dinov3.v1.EmbeddingService";

class EmbeddingServer {
 public:
  // Returns once the server is SERVING, or the reason it could not start.
  static absl::StatusOr<std::unique_ptr<EmbeddingServer>> Start(const ServerOptions& options);
  ~EmbeddingServer();  // Shutdown()

  int port() const { return port_; }
  int metrics_port() const { return metrics_http_ ? metrics_http_->port() : 0; }
  int http_port() const { return http_server_ ? http_server_->port() : 0; }
  const metrics::ServerMetrics& metrics() const { return *metrics_; }
  void Shutdown();

 private:
  explicit EmbeddingServer(const ServerOptions& options);
  absl::Status Listen();
  absl::Status StartMetricsEndpoint();
  // The HTTP server of the front doors, with their routes (after the gRPC server listens).
  absl::Status StartHttpFrontDoors();
  void AddConnectionArguments(grpc::ServerBuilder& builder) const;
  // Creates the model lifecycle and, with admin keys, registers the ModelAdmin service.
  absl::Status AddAdminService(grpc::ServerBuilder& builder);
  absl::Status LoadAndWarmUp();
  // Holds the decode budget (for the server's life; sized for host-built inputs with
  // `host_input`) and each model's instance transients (request_footprint.h; the model holds
  // them) in the memory budget; InvalidArgument when that leaves no room for requests.
  absl::Status ReserveFixedTransients(
      int decode_threads, bool host_input,
      const std::vector<std::shared_ptr<registry::ServedModel>>& models);
  // The health of one model's entry (and of the whole service for the default model).
  void SetModelServing(const std::string& name, bool serving);
  // A model's instances became unhealthy (or healthy again): logs it and sets its health,
  // unless the server is draining.
  void InstanceHealthChanged(const std::string& name, bool healthy,
                             const std::atomic<bool>& in_service);
  void SetServing(bool serving);

  const ServerOptions options_;
  // The CPUs this process may use (affinity, container quota): the default thread counts of
  // the preprocess and HTTP pools. Detected once.
  const UsableCpus usable_cpus_ = DetectUsableCpus();
  std::unique_ptr<metrics::ServerMetrics> metrics_;
  std::unique_ptr<http::HttpServer> metrics_http_;  // /metrics
  MemoryBudget memory_budget_;
  std::unique_ptr<MemoryBudget> decode_budget_;  // decoder transients, within memory_budget_
  registry::ModelRegistry registry_;
  EmbeddingService service_;
  kserve::GrpcInferenceService kserve_service_;  // the Open Inference Protocol
  std::unique_ptr<registry::ModelLifecycle> lifecycle_;
  std::unique_ptr<ModelAdminService> admin_service_;  // null without admin keys
  std::unique_ptr<grpc::Server> grpc_server_;
  openai::OpenAIEnvironment openai_;
  kserve::RestEnvironment rest_;
  std::atomic<bool> http_draining_{false};
  std::unique_ptr<http::HttpRouter> http_router_;
  std::unique_ptr<http::HttpServer> http_server_;  // null unless http_enabled
  // Where the HTTP front doors parse and handle bodies, off the event loop; its backlog is
  // http.max_connections (each connection has one request at a time), so it never refuses
  // one while it runs.
  std::unique_ptr<pipeline::ThreadPool> http_pool_;
  int port_ = 0;
  std::unique_ptr<pipeline::ThreadPool> pool_;
  registry::SharedParts shared_;
  bool shut_down_ = false;
  absl::Mutex health_mu_;  // orders health changes from workers against the drain
  bool draining_ ABSL_GUARDED_BY(health_mu_) = false;
};

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_APP_SERVER_H_
