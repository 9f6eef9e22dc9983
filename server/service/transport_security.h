// The gRPC server credentials for the configured transport security:
//   - TLS when cert_file and key_file are set (files checked at start-up, tls_files.h), and
//     re-read every `reload` so rotated certificates apply to new connections without a restart
//     (gRPC keeps the previous pair while a new one cannot be read); mutual TLS when
//     client_ca_file is set: clients must present a certificate signed by it.
//   - otherwise plaintext. Where API keys are set, plaintext uses gRPC's local credentials
//     (LOCAL_TCP / UDS): they admit loopback peers only, and they are what lets gRPC run the
//     key check (ApiKeyAuthProcessor) without TLS. config/ refuses API keys over plaintext on
//     a non-loopback address before this is reached.
//   - API keys (api_key_auth.h) on top of either when api_keys_file is set: one key per line,
//     each at least kMinApiKeyLength characters.
// Errors: InvalidArgument naming the setting and the file. Thread-safe: plain functions.
#ifndef DINOV3_SERVER_SERVICE_TRANSPORT_SECURITY_H_
#define DINOV3_SERVER_SERVICE_TRANSPORT_SECURITY_H_

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/metrics/server_metrics.h"

namespace dinov3::service {

inline constexpr int kMinApiKeyLength = 16;

struct TransportSecurityOptions {
  std::string cert_file = "";       // PEM chain; with key_file: TLS
  std::string key_file = "";        // PEM private key
  std::string client_ca_file = "";  // PEM CA bundle: mutual TLS
  absl::Duration reload = absl::Seconds(60);
  std::string api_keys_file = "";  // "" = no API keys
  bool exempt_health = true;       // health calls need no key
};

struct ServerTransport {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  std::string description;  // for the start-up log: the mode, the certificate, the keys
};

// The keys of an API-key file (one per line, # comments; secret_file.h), each at least
// kMinApiKeyLength characters; errors name `key_name` (the config key) and the file.
absl::StatusOr<std::vector<std::string>> ReadApiKeys(const std::string& path, const char* key_name);

// `listen` is the gRPC address (its unix: prefix picks the local credentials' kind).
// `metrics` counts refused calls and must outlive the server.
absl::StatusOr<ServerTransport> MakeServerTransport(const std::string& listen,
                                                    const TransportSecurityOptions& options,
                                                    metrics::ServerMetrics* metrics);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_TRANSPORT_SECURITY_H_
