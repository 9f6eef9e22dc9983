// Loading, validating and printing the dinov3-server configuration (ServerConfig).
//
// Sources, lowest precedence first: built-in defaults (server_config.h) < config file (YAML,
// ConfigSources::file or else the DINOV3_CONFIG environment variable) < environment variables
// (DINOV3_<SECTION>_<NAME>, e.g. DINOV3_BATCHING_MAX_BATCH_SIZE) < overrides (command-line
// flags). Each later source replaces a key's whole value (lists included).
//
// Errors are InvalidArgument and say where the value came from and which key is wrong:
//   "config file /x.yaml: batching.max_batch_size must be between 1 and 1024, got 0 (line 4)"
//   "environment DINOV3_BATCHING_MAX_BATCH_SIZE: batching.max_batch_size must be an integer,
//    got 'abc'"
//   "--max_batch_size: batching.max_batch_size must be between 1 and 1024, got 0"
// Unknown keys in the file are errors (with the nearest known key when one is close); unknown
// DINOV3_* environment variables are not (Kubernetes service links, test settings), only a
// warning when close to a known one. Validation reports every bad key, one per line.
// An empty file, or one with only comments, sets nothing.
//
// Plain functions of their arguments: thread-safe, no global state (the caller passes the
// environment in).
#ifndef DINOV3_CONFIG_CONFIG_H_
#define DINOV3_CONFIG_CONFIG_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "config/server_config.h"

namespace dinov3::config {

// Names the config file when ConfigSources::file is empty.
inline constexpr char kConfigFileEnvVar[] = "DINOV3_CONFIG";

struct ConfigSources {
  std::string file = "";  // YAML config file; "" = the DINOV3_CONFIG variable of `env`, or none
  // Environment variables (name, value), e.g. {"DINOV3_BATCHING_MAX_BATCH_SIZE", "16"}.
  // Variables without the DINOV3_ prefix are ignored, and so are empty values. Lists are
  // comma-separated ("cuda:0,cuda:1").
  std::vector<std::pair<std::string, std::string>> env = {};
  struct Override {
    std::string key;     // e.g. "batching.max_batch_size"; an unknown key is an error
    std::string value;   // text, as in an environment variable (lists comma-separated)
    std::string origin;  // for errors, e.g. "--max_batch_size"
  };
  std::vector<Override> overrides = {};  // applied in order, last wins
};

struct LoadOptions {
  // false: required keys (model.path) may be empty, e.g. for --print_config. Every other
  // check still applies.
  bool check_required = true;
};

// Defaults, then file < env < overrides, then Validate. Warnings (ignored DINOV3_* variables
// that look like a misspelt key) are appended to `warnings` when it is not null.
absl::StatusOr<ServerConfig> LoadConfig(const ConfigSources& sources,
                                        const LoadOptions& options = {},
                                        std::vector<std::string>* warnings = nullptr);

// Every range, allowed value and cross-field rule; one line per bad key.
absl::Status Validate(const ServerConfig& config, const LoadOptions& options = {});

// The whole config as a YAML file, every key with its help text and allowed values as a
// comment. LoadConfig of this text gives `config` back.
std::string ToYaml(const ServerConfig& config);

// One line, "server.listen=127.0.0.1:50051 server.max_receive_message_bytes=67108864 ...".
std::string Summary(const ServerConfig& config);

// A served model as the server loads it: its name, and the model.* and batching.* keys that
// apply to it (model.path is its export).
struct ModelConfig {
  std::string name;
  ModelSection model;
  BatchingSection batching;
  bool operator==(const ModelConfig&) const = default;
};

// The models of a valid config, in order: the entries of `models`, each key they leave out
// taken from the top level, or else one model, model.path, named model.name (or by
// DefaultModelName). The first is the default unless model.default_model names another
// (DefaultModel).
std::vector<ModelConfig> ResolveModels(const ServerConfig& config);
std::string DefaultModel(const ServerConfig& config);

// A valid served-model name: 1 to 64 letters, digits, '-', '_' or '.', and not "." or "..".
bool IsValidModelName(absl::string_view name);

// The name of an export whose model.name is "": its file name without the extension, each
// character that a name may not hold replaced by '_' ("/m/vits16 v2.pt" -> "vits16_v2").
std::string DefaultModelName(absl::string_view path);

// Every key, in file order ("server.listen", ...).
std::vector<std::string> KnownKeys();

// True for unix:PATH and HOST:PORT with HOST localhost, 127.x.y.z or [::1]: addresses that
// only this machine can reach, where plaintext gRPC needs no tls.allow_plaintext.
bool IsLoopbackAddress(absl::string_view address);

// "batching.max_batch_size" -> "DINOV3_BATCHING_MAX_BATCH_SIZE".
std::string EnvVarName(absl::string_view key);

}  // namespace dinov3::config

#endif  // DINOV3_CONFIG_CONFIG_H_
