#include "server/common/secret_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dinov3 {

absl::StatusOr<std::vector<std::string>> ReadSecretLines(const std::string& path,
                                                         absl::string_view what) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    const int error = errno;
    const std::string message = absl::StrCat(what, " ", path, ": cannot read: ", strerror(error));
    return error == EACCES ? absl::PermissionDeniedError(message) : absl::NotFoundError(message);
  }
  std::stringstream text;
  text << file.rdbuf();
  std::vector<std::string> secrets;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    secrets.emplace_back(line);
  }
  if (secrets.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", path, ": no entries (one per line; '#' starts a comment)"));
  }
  return secrets;
}

bool ConstantTimeEquals(absl::string_view secret, absl::string_view candidate) {
  // Walks the candidate whatever the secret is; reads past the secret's end compare with 0,
  // and a length mismatch is folded in at the end.
  unsigned char difference = secret.size() == candidate.size() ? 0 : 1;
  for (size_t i = 0; i < candidate.size(); ++i) {
    const unsigned char s = i < secret.size() ? static_cast<unsigned char>(secret[i]) : 0;
    difference |= s ^ static_cast<unsigned char>(candidate[i]);
  }
  // Keeps the compiler from turning the loop into an early-exit comparison.
  asm volatile("" : "+r"(difference));
  return difference == 0;
}

bool MatchesAnySecret(const std::vector<std::string>& secrets, absl::string_view candidate) {
  bool match = false;
  for (const std::string& secret : secrets) match |= ConstantTimeEquals(secret, candidate);
  return match;
}

}  // namespace dinov3
