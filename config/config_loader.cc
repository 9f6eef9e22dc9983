// LoadConfig and Validate: defaults < file < environment < overrides, then the checks.
#include <algorithm>
#include <map>
#include <string>
#include <type_traits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "config/config.h"
#include "config/config_internal.h"
#include "config/field_checks.h"
#include "config/field_values.h"

namespace dinov3::config {
namespace {

using internal::Origin;
using internal::OriginMap;

absl::Status WithOrigin(const Origin& origin, const absl::Status& status) {
  return absl::InvalidArgumentError(
      absl::StrCat(origin.prefix, ": ", status.message(), origin.suffix));
}

// Sets `key` from text. NotFound when there is no such key.
absl::Status SetFromText(ServerConfig& config, absl::string_view key, absl::string_view text) {
  absl::Status status;
  const bool found = internal::WithField(
      config, key, [&](auto& field) { status = internal::ParseText(key, text, field); });
  if (!found) return absl::NotFoundError(absl::StrCat("unknown key '", key, "'"));
  return status;
}

// A close known variable for an ignored DINOV3_* name: by edit distance, or one whose name
// ends with the same words (DINOV3_MAX_BATCH_SIZE -> DINOV3_BATCHING_MAX_BATCH_SIZE).
std::string NearestVariable(absl::string_view name, const std::vector<std::string>& known) {
  std::string nearest = internal::Nearest(name, known);
  if (!nearest.empty()) return nearest;
  const absl::string_view words = name.substr(absl::string_view("DINOV3_").size());
  for (const std::string& candidate : known) {
    if (!words.empty() && absl::EndsWith(candidate, absl::StrCat("_", words))) return candidate;
  }
  return "";
}

absl::Status ApplyEnvironment(const ConfigSources& sources, ServerConfig& config,
                              OriginMap& origins, std::vector<std::string>* warnings) {
  std::map<std::string, std::string, std::less<>> key_of_variable;
  std::vector<std::string> variables;
  for (const std::string& key : KnownKeys()) {
    key_of_variable[EnvVarName(key)] = key;
    variables.push_back(EnvVarName(key));
  }
  for (const auto& [name, value] : sources.env) {
    if (!absl::StartsWith(name, "DINOV3_") || name == kConfigFileEnvVar) continue;
    auto it = key_of_variable.find(name);
    if (it == key_of_variable.end()) {
      const std::string nearest = NearestVariable(name, variables);
      if (warnings != nullptr && !nearest.empty()) {
        warnings->push_back(absl::StrCat("ignoring environment variable ", name,
                                         ": not a config key; did you mean ", nearest, "?"));
      }
      continue;
    }
    if (value.empty()) continue;
    Origin origin{absl::StrCat("environment ", name), ""};
    if (absl::Status s = SetFromText(config, it->second, value); !s.ok()) {
      return WithOrigin(origin, s);
    }
    origins[it->second] = std::move(origin);
  }
  return absl::OkStatus();
}

std::string ConfigFile(const ConfigSources& sources) {
  if (!sources.file.empty()) return sources.file;
  for (const auto& [name, value] : sources.env) {
    if (name == kConfigFileEnvVar) return value;
  }
  return "";
}

}  // namespace

absl::StatusOr<ServerConfig> LoadConfig(const ConfigSources& sources, const LoadOptions& options,
                                        std::vector<std::string>* warnings) {
  ServerConfig config;
  OriginMap origins;
  if (const std::string file = ConfigFile(sources); !file.empty()) {
    if (absl::Status s = internal::ApplyYamlFile(file, config, origins); !s.ok()) return s;
  }
  if (absl::Status s = ApplyEnvironment(sources, config, origins, warnings); !s.ok()) return s;
  for (const ConfigSources::Override& override : sources.overrides) {
    Origin origin{override.origin, ""};
    if (absl::Status s = SetFromText(config, override.key, override.value); !s.ok()) {
      return WithOrigin(origin, s);
    }
    origins[override.key] = std::move(origin);
  }
  if (absl::Status s = internal::ValidateWithOrigins(config, options, origins); !s.ok()) return s;
  return config;
}

absl::Status Validate(const ServerConfig& config, const LoadOptions& options) {
  return internal::ValidateWithOrigins(config, options, {});
}

namespace internal {

absl::Status ValidateWithOrigins(const ServerConfig& config, const LoadOptions& options,
                                 const OriginMap& origins) {
  std::vector<std::string> errors;
  VisitFields(config, [&](absl::string_view key, const auto& field, const auto& constraint,
                          absl::string_view) {
    if constexpr (std::is_same_v<std::decay_t<decltype(constraint)>, Required>) {
      if (!options.check_required || !config.models.empty()) return;  // model.path
    }
    absl::Status status = Check(key, field, constraint);
    if (status.ok()) return;
    auto it = origins.find(key);
    if (it != origins.end()) status = WithOrigin(it->second, status);
    errors.emplace_back(status.message());
  });
  for (std::string& error : ModelListErrors(config, origins)) errors.push_back(std::move(error));
  if (errors.empty()) {  // the rules between keys, once every key is valid on its own
    for (std::string& error : SecurityRuleErrors(config)) errors.push_back(std::move(error));
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors, "\n"));
}

std::string Nearest(absl::string_view name, const std::vector<std::string>& candidates) {
  // Levenshtein distance, one row at a time.
  auto distance = [](absl::string_view a, absl::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0];
      row[0] = i;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  const size_t limit = std::max<size_t>(2, name.size() / 5);
  std::string best;
  size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    const size_t d = distance(name, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

}  // namespace internal
}  // namespace dinov3::config
