// API-key authentication of every gRPC call: the metadata "authorization: Bearer <key>" must
// carry one of the configured keys (compared in constant time, server/common/secret_file.h).
// A call without it, or with another key, ends UNAUTHENTICATED before it reaches any service
// (the embedding service, the Open Inference Protocol, reflection; and health unless exempt,
// and with it the Open Inference Protocol's ServerLive and ServerReady probes; the ModelAdmin
// service checks its own admin keys, model_admin_service.h), and is counted by
// ServerMetrics::RecordUnauthenticated. The key is removed from the metadata the services see.
//
// gRPC runs the processor only for secure server credentials (TLS, or local credentials on a
// loopback address; transport_security.h picks them). Non-blocking: runs on gRPC's thread.
// Thread-safe; `metrics` must outlive the processor.
#ifndef DINOV3_SERVER_SERVICE_API_KEY_AUTH_H_
#define DINOV3_SERVER_SERVICE_API_KEY_AUTH_H_

#include <grpcpp/security/auth_metadata_processor.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/metrics/server_metrics.h"

namespace dinov3::service {

class ApiKeyAuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  ApiKeyAuthProcessor(std::vector<std::string> keys, bool exempt_health,
                      metrics::ServerMetrics* metrics);

  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed_auth_metadata,
                       OutputMetadata* response_metadata) override;

 private:
  // Logs a refusal as an access line (a warning), at most one a second, so a flood of bad
  // calls cannot flood the log.
  void LogRefusal(absl::string_view path, const char* what);

  const std::vector<std::string> keys_;
  const bool exempt_health_;
  metrics::ServerMetrics* const metrics_;
  std::atomic<int64_t> last_log_second_{0};
  std::atomic<int64_t> unlogged_{0};
};

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_API_KEY_AUTH_H_
