// Internal to dinov3_config: what the loader, the YAML file reader and the printer share.
#ifndef DINOV3_CONFIG_CONFIG_INTERNAL_H_
#define DINOV3_CONFIG_CONFIG_INTERNAL_H_

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "config/config.h"
#include "config/config_fields.h"
#include "config/server_config.h"

namespace dinov3::config::internal {

// Where a key's value came from, for error messages: "<prefix>: <message><suffix>".
struct Origin {
  std::string prefix;  // "config file /x.yaml", "environment DINOV3_...", "--max_batch_size"
  std::string suffix;  // " (line 4)" or ""
};
using OriginMap = std::map<std::string, Origin, std::less<>>;

// Calls f(field) with the member named `key`; false when there is no such key.
template <typename Config, typename F>
bool WithField(Config& config, absl::string_view key, F&& f) {
  bool found = false;
  VisitFields(config, [&](absl::string_view k, auto& field, const auto&, absl::string_view) {
    if (!found && k == key) {
      found = true;
      f(field);
    }
  });
  return found;
}

// Applies the YAML file at `path` to `config`, recording each key's origin.
absl::Status ApplyYamlFile(const std::string& path, ServerConfig& config, OriginMap& origins);

// Validate(), with each error prefixed by the origin of its key (when known).
absl::Status ValidateWithOrigins(const ServerConfig& config, const LoadOptions& options,
                                 const OriginMap& origins);

// Parses the config file's `models` sequence (`node`) into config.models, recording origins
// "models[i]" and "models[i].<key>" for errors. Errors name the entry, key and line.
absl::Status ParseModelList(const YAML::Node& node, const std::string& prefix, ServerConfig& config,
                            OriginMap& origins);
// The broken rules of the models list and model.name / model.default_model, one message each.
std::vector<std::string> ModelListErrors(const ServerConfig& config, const OriginMap& origins);
// The `models:` part of ToYaml (comment and list).
std::string ModelListYaml(const ServerConfig& config);

// The broken cross-key rules of tls.*, auth.* and server.listen, one message each
// (security_rules.cc).
std::vector<std::string> SecurityRuleErrors(const ServerConfig& config);

// The candidate closest to `name` by edit distance, when close enough to be a likely
// misspelling; "" otherwise.
std::string Nearest(absl::string_view name, const std::vector<std::string>& candidates);

}  // namespace dinov3::config::internal

#endif  // DINOV3_CONFIG_CONFIG_INTERNAL_H_
