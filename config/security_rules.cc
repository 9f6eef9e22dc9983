// The cross-key rules of the transport security settings (tls.*, auth.*, server.listen,
// http.listen) and
// IsLoopbackAddress. Part of Validate().
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "config/config.h"
#include "config/config_internal.h"

namespace dinov3::config {

bool IsLoopbackAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix:")) return true;
  const size_t colon = address.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? address : address.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

namespace internal {

std::vector<std::string> SecurityRuleErrors(const ServerConfig& config) {
  std::vector<std::string> errors;
  const TlsSection& tls = config.tls;
  const bool tls_on = !tls.cert_file.empty() && !tls.key_file.empty();
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    errors.push_back("tls.cert_file and tls.key_file go together: set both, or neither");
  }
  if (!tls.client_ca_file.empty() && !tls_on) {
    errors.push_back(
        "tls.client_ca_file needs tls.cert_file and tls.key_file (mutual TLS is TLS with client "
        "certificates)");
  }
  if (!config.admin.model_repository.empty() && config.admin.api_keys_file.empty()) {
    errors.push_back(
        "admin.model_repository needs admin.api_keys_file: without admin keys the ModelAdmin "
        "RPCs that load from it are off");
  }
  if (tls_on) return errors;
  const auto plaintext_errors = [&](const char* key, const std::string& listen) {
    if (IsLoopbackAddress(listen)) return;
    if (!tls.allow_plaintext) {
      errors.push_back(absl::StrCat(
          key, " ", listen,
          " is not a loopback address and TLS is off: set tls.cert_file and tls.key_file, or "
          "tls.allow_plaintext: true to serve plaintext there (behind a TLS-terminating proxy "
          "or mesh)"));
    }
    if (!config.auth.api_keys_file.empty()) {
      errors.push_back(absl::StrCat(
          "auth.api_keys_file: API keys would cross the network in clear text on ", key, " ",
          listen, ": set tls.cert_file and tls.key_file, or listen on a loopback address"));
    }
    if (!config.admin.api_keys_file.empty() && key == std::string("server.listen")) {
      errors.push_back(absl::StrCat(
          "admin.api_keys_file: admin keys would cross the network in clear text on ", key, " ",
          listen, ": set tls.cert_file and tls.key_file, or listen on a loopback address"));
    }
  };
  plaintext_errors("server.listen", config.server.listen);
  if (config.http.enabled) plaintext_errors("http.listen", config.http.listen);
  return errors;
}

}  // namespace internal
}  // namespace dinov3::config
