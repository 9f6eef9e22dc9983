// Start-up checks of the TLS files, so a bad certificate stops the server with a clear message
// instead of failing every handshake later (gRPC's file watcher only logs).
//
// CheckTlsFiles: the certificate file holds at least one PEM certificate, the key file a PEM
// private key that belongs to the first certificate, and the CA file (when not empty) at least
// one PEM certificate. InvalidArgument naming the setting and the path otherwise (never the
// key's contents). On success, a description for the start-up log: the certificate's subject,
// its expiry, and the number of CA certificates. An expired certificate is an error.
// OpenSSL only; thread-safe.
#ifndef DINOV3_SERVER_SERVICE_TLS_FILES_H_
#define DINOV3_SERVER_SERVICE_TLS_FILES_H_

#include <string>

#include "absl/status/statusor.h"

namespace dinov3::service {

absl::StatusOr<std::string> CheckTlsFiles(const std::string& cert_file, const std::string& key_file,
                                          const std::string& client_ca_file);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_TLS_FILES_H_
