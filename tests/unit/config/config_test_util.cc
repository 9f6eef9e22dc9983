#include "tests/unit/config/config_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "config/config.h"

namespace dinov3::config::testing {

std::string WriteTempFile(const std::string& contents) {
  static std::atomic<int> counter{0};
  const std::string path =
      absl::StrCat(::testing::TempDir(), "/config_test_", ::getpid(), "_", counter++, ".yaml");
  std::ofstream(path) << contents;
  return path;
}

ServerConfig ConfigA() {
  ServerConfig c;
  c.server = {"127.0.0.1:6000", 1 << 20, 3, 1.5, 60, 5, 30, 10, 5};
  c.tls = {"/tls/a.crt", "/tls/a.key", "/tls/a-ca.pem", 30, true};
  c.auth = {"/keys/a", false};
  c.admin = {"/admin/a", "/repository/a", 5};
  c.http = {false, "127.0.0.1:8100", 10, 2048, 5.5, 15, 8};
  // model.name is not the file stem ("a"), so a name taken from model.path would show;
  // model.default_model, with no models list, must be the one model's name.
  c.model = {"/models/a.pt", {"cuda:0", "cuda:1"}, 2, 4, "export", "alpha", "alpha"};
  c.limits = {16, 1 << 20, 1'000'000, 16, 1024};
  c.batching = {32, 5.25, {4, 8}, 1 << 22, 100};
  c.logging = {"debug", "json", "warn"};
  c.metrics = {false, "127.0.0.1:9000", "/metrics/a"};
  return c;
}

ServerConfig ConfigB() {
  ServerConfig c;
  c.server = {"[::1]:7000", 2 << 20, 5, 30, 0, 0.5, 120, 40, 20};
  c.server.decode = "fast";
  c.tls = {"/tls/b.crt", "/tls/b.key", "/tls/b-ca.pem", 120, false};
  c.auth = {"/keys/b", true};
  c.admin = {"/admin/b", "/repository/b", 0};
  c.http = {true, "[::1]:8200", 20, 4096, 10, 120, 16};
  c.model = {"/models/b.pt", {"cuda"}, 3, 2, "export", "beta-2", "beta-2"};
  c.limits = {32, 2 << 20, 2'000'000, 32, 2048};
  c.batching = {64, 0.125, {8}, 1 << 23, 200};
  c.logging = {"trace", "text", "off"};
  c.metrics = {true, "0.0.0.0:9100", "/metrics/b"};
  return c;
}

ServerConfig ConfigC() {
  ServerConfig c;
  c.server = {"unix:/tmp/dinov3.sock", 4 << 20, 7, 0, 3600, 120, 7200, 1, 1};
  c.tls = {"/tls/c.crt", "/tls/c.key", "/tls/c-ca.pem", 5, true};
  c.auth = {"/keys/c", false};
  c.admin = {"/admin/c", "/repository/c", 3600};
  c.http = {false, "localhost:8300", 30, 65536, 0.25, 0.5, 100};
  c.model = {"/models/c.pt", {"cpu", "cuda:3"}, 4, 1, "export", "gamma_3.v1", "gamma_3.v1"};
  c.limits = {8, 4 << 20, 3'000'000, 2, 512};
  c.batching = {16, 0, {2, 4, 16}, 0, 300};
  c.logging = {"error", "json", "critical"};
  c.metrics = {false, "localhost:0", "/metrics/c"};
  return c;
}

std::map<std::string, std::string> FieldTexts(const ServerConfig& config) {
  std::map<std::string, std::string> texts;
  // Split on " key=" rather than on spaces, so that values may contain spaces. The last key
  // ends where Summary's trailing " models=..." (not a key) begins.
  const std::vector<std::string> keys = KnownKeys();
  std::string summary = Summary(config);
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string start = absl::StrCat(keys[i], "=");
    const size_t begin = summary.find(start) + start.size();
    const std::string next = i + 1 < keys.size() ? absl::StrCat(" ", keys[i + 1], "=") : " models=";
    const size_t end = summary.find(next, begin);
    texts[keys[i]] = summary.substr(begin, end - begin);
  }
  return texts;
}

}  // namespace dinov3::config::testing
