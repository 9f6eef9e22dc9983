// ToYaml, Summary, KnownKeys and EnvVarName: the printed forms of the field list.
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "config/config.h"
#include "config/config_fields.h"
#include "config/config_internal.h"
#include "config/field_checks.h"
#include "config/field_values.h"

namespace dinov3::config {

std::string ToYaml(const ServerConfig& config) {
  std::string out =
      "# dinov3-server configuration. Precedence: command-line flag > environment variable\n"
      "# (DINOV3_<SECTION>_<KEY>) > this file > built-in default.\n";
  std::vector<std::string> open_sections;
  VisitFields(config, [&](absl::string_view key, const auto& field, const auto& constraint,
                          absl::string_view help) {
    std::vector<std::string> path = absl::StrSplit(key, '.');
    const std::string leaf = path.back();
    path.pop_back();
    size_t common = 0;
    while (common < path.size() && common < open_sections.size() &&
           path[common] == open_sections[common]) {
      ++common;
    }
    for (size_t level = common; level < path.size(); ++level) {
      if (level == 0) out += "\n";
      absl::StrAppend(&out, std::string(2 * level, ' '), path[level], ":\n");
    }
    open_sections = path;
    const std::string indent(2 * path.size(), ' ');
    const std::string allowed = internal::Describe(constraint);
    absl::StrAppend(&out, indent, "# ", help, allowed.empty() ? "" : "; allowed: ", allowed, "\n",
                    indent, "# env ", EnvVarName(key), "\n", indent, leaf, ": ",
                    internal::FormatYaml(field), "\n");
  });
  return out + internal::ModelListYaml(config);
}

std::string Summary(const ServerConfig& config) {
  std::vector<std::string> parts;
  VisitFields(config,
              [&](absl::string_view key, const auto& field, const auto&, absl::string_view) {
                parts.push_back(absl::StrCat(key, "=", internal::FormatText(field)));
              });
  std::vector<std::string> models;
  for (const ModelConfig& model : ResolveModels(config)) {
    models.push_back(absl::StrCat(model.name, ":", model.model.path));
  }
  parts.push_back(absl::StrCat("models=", absl::StrJoin(models, ",")));
  return absl::StrJoin(parts, " ");
}

std::vector<std::string> KnownKeys() {
  std::vector<std::string> keys;
  const ServerConfig config;
  VisitFields(config, [&](absl::string_view key, const auto&, const auto&, absl::string_view) {
    keys.emplace_back(key);
  });
  return keys;
}

std::string EnvVarName(absl::string_view key) {
  return absl::StrCat("DINOV3_", absl::AsciiStrToUpper(absl::StrReplaceAll(key, {{".", "_"}})));
}

}  // namespace dinov3::config
