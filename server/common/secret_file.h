// Secrets read from files (API keys, basic-auth credentials), never from the command line, and
// compared in constant time.
//
// ReadSecretLines: the non-empty lines of a file, each trimmed of surrounding whitespace, with
// lines starting with '#' skipped. Errors: NotFound/PermissionDenied when the file cannot be
// read, InvalidArgument when it holds no secret; messages name `what` and the path, never a
// secret. Thread-safe: no shared state.
#ifndef DINOV3_SERVER_COMMON_SECRET_FILE_H_
#define DINOV3_SERVER_COMMON_SECRET_FILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dinov3 {

// `what` names the setting in messages, e.g. "auth.api_keys_file".
absl::StatusOr<std::vector<std::string>> ReadSecretLines(const std::string& path,
                                                         absl::string_view what);

// True when `candidate` equals `secret`. The time taken depends only on candidate.size(),
// never on where the two differ nor on the secret's length.
bool ConstantTimeEquals(absl::string_view secret, absl::string_view candidate);

// True when `candidate` equals one of `secrets`; every secret is compared (no early exit).
bool MatchesAnySecret(const std::vector<std::string>& secrets, absl::string_view candidate);

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_SECRET_FILE_H_
