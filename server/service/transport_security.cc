#include "server/service/transport_security.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/secret_file.h"
#include "server/service/api_key_auth.h"
#include "server/service/tls_files.h"

namespace dinov3::service {
namespace {

absl::StatusOr<ServerTransport> MakeTls(const TransportSecurityOptions& options) {
  absl::StatusOr<std::string> checked =
      CheckTlsFiles(options.cert_file, options.key_file, options.client_ca_file);
  if (!checked.ok()) return checked.status();
  const auto reload_seconds =
      static_cast<unsigned int>(std::max<int64_t>(1, absl::ToInt64Seconds(options.reload)));
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.key_file, options.cert_file, options.client_ca_file, reload_seconds);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  const bool mutual = !options.client_ca_file.empty();
  if (mutual) {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return ServerTransport{grpc::experimental::TlsServerCredentials(tls),
                         absl::StrCat(mutual ? "mutual TLS" : "TLS", " (", *checked,
                                      "; files re-read every ", reload_seconds, " s)")};
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ReadApiKeys(const std::string& path,
                                                     const char* key_name) {
  absl::StatusOr<std::vector<std::string>> keys = ReadSecretLines(path, key_name);
  if (!keys.ok()) return keys.status();
  for (size_t i = 0; i < keys->size(); ++i) {
    if ((*keys)[i].size() < kMinApiKeyLength) {
      return absl::InvalidArgumentError(absl::StrCat(
          key_name, " ", path, ": key ", i + 1, " has ", (*keys)[i].size(),
          " characters; keys need at least ", kMinApiKeyLength, " (e.g. openssl rand -hex 32)"));
    }
  }
  return keys;
}

absl::StatusOr<ServerTransport> MakeServerTransport(const std::string& listen,
                                                    const TransportSecurityOptions& options,
                                                    metrics::ServerMetrics* metrics) {
  const bool api_keys = !options.api_keys_file.empty();
  ServerTransport transport;
  if (!options.cert_file.empty() || !options.key_file.empty()) {
    absl::StatusOr<ServerTransport> tls = MakeTls(options);
    if (!tls.ok()) return tls.status();
    transport = *std::move(tls);
  } else if (api_keys) {
    const bool unix_socket = absl::StartsWith(listen, "unix:");
    transport = {grpc::experimental::LocalServerCredentials(unix_socket ? UDS : LOCAL_TCP),
                 "plaintext, local connections only"};
  } else {
    transport = {grpc::InsecureServerCredentials(), "plaintext"};
  }
  if (!api_keys) {
    absl::StrAppend(&transport.description, "; no API keys");
    return transport;
  }
  absl::StatusOr<std::vector<std::string>> keys =
      ReadApiKeys(options.api_keys_file, "auth.api_keys_file");
  if (!keys.ok()) return keys.status();
  absl::StrAppend(&transport.description, "; API keys required (", keys->size(), " from ",
                  options.api_keys_file, options.exempt_health ? "; health exempt)" : ")");
  transport.credentials->SetAuthMetadataProcessor(
      std::make_shared<ApiKeyAuthProcessor>(*std::move(keys), options.exempt_health, metrics));
  return transport;
}

}  // namespace dinov3::service
