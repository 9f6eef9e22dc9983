// The models list: parsing its entries from the config file, resolving each against the
// top-level model.* / batching.* defaults, its validation rules and its YAML form.
#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <type_traits>

#include "absl/strings/ascii.h"
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
using internal::WithField;

absl::string_view Leaf(absl::string_view key) { return key.substr(key.rfind('.') + 1); }

// The full key ("batching.max_batch_size") of an entry's key ("max_batch_size"); "" if none.
std::string PerModelKey(absl::string_view leaf) {
  for (absl::string_view key : kPerModelKeys) {
    if (Leaf(key) == leaf) return std::string(key);
  }
  return "";
}

// The keys an entry may have: name, path and the last parts of kPerModelKeys.
std::vector<std::string> EntryKeyList() {
  std::vector<std::string> keys = {"name", "path"};
  for (absl::string_view key : kPerModelKeys) keys.emplace_back(Leaf(key));
  return keys;
}

std::string EntryKeys() { return absl::StrJoin(EntryKeyList(), ", "); }

// A config holding only an entry's own values, so WithField can reach them by key.
ServerConfig EntryConfig(const ModelEntry& entry) {
  ServerConfig config;
  config.model = entry.model;
  config.batching = entry.batching;
  return config;
}

// `to` = `from` for one key of two configs.
void CopyKey(const ServerConfig& from, ServerConfig& to, absl::string_view key) {
  WithField(to, key, [&](auto& dst) {
    WithField(from, key, [&](const auto& src) {
      if constexpr (std::is_same_v<std::decay_t<decltype(dst)>, std::decay_t<decltype(src)>>) {
        dst = src;
      }
    });
  });
}

// The top-level config with the entry's path and keys applied.
ServerConfig ResolvedConfig(const ServerConfig& config, const ModelEntry& entry) {
  ServerConfig resolved = config;
  resolved.model.path = entry.path;
  const ServerConfig own = EntryConfig(entry);
  for (const std::string& key : entry.keys_set) CopyKey(own, resolved, key);
  return resolved;
}

std::string EntryLabel(const std::vector<ModelEntry>& models, size_t i) {
  return models[i].name.empty() ? absl::StrCat("models[", i, "]")
                                : absl::StrCat("models[", i, "] (", models[i].name, ")");
}

}  // namespace

bool IsValidModelName(absl::string_view name) {
  const bool valid_chars = std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
  return !name.empty() && name.size() <= 64 && valid_chars && name != "." && name != "..";
}

std::string DefaultModelName(absl::string_view path) {
  absl::string_view file = path.substr(path.rfind('/') + 1);
  if (const size_t dot = file.rfind('.'); dot != absl::string_view::npos && dot > 0) {
    file = file.substr(0, dot);
  }
  std::string name(file.substr(0, 64));
  for (char& c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.') c = '_';
  }
  return name.empty() || name == "." || name == ".." ? "default" : name;
}

std::vector<ModelConfig> ResolveModels(const ServerConfig& config) {
  std::vector<ModelConfig> models;
  if (config.models.empty()) {
    const std::string name =
        config.model.name.empty() ? DefaultModelName(config.model.path) : config.model.name;
    models.push_back({name, config.model, config.batching});
    return models;
  }
  for (const ModelEntry& entry : config.models) {
    const ServerConfig resolved = ResolvedConfig(config, entry);
    models.push_back({entry.name, resolved.model, resolved.batching});
  }
  return models;
}

std::string DefaultModel(const ServerConfig& config) {
  if (!config.model.default_model.empty()) return config.model.default_model;
  return ResolveModels(config).front().name;
}

namespace internal {

absl::Status ParseModelList(const YAML::Node& node, const std::string& prefix, ServerConfig& config,
                            OriginMap& origins) {
  const auto error = [&](const YAML::Node& at, absl::string_view message) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": ", message, " (line ", at.Mark().line + 1, ")"));
  };
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsSequence()) {
    return error(node, "models must be a list of models (- name: ..., path: ...)");
  }
  config.models.clear();
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    const std::string label = absl::StrCat("models[", i, "]");
    if (!item.IsMap())
      return error(item, absl::StrCat(label, " must be a mapping (name, path, ...)"));
    ModelEntry entry;
    origins[label] = Origin{prefix, absl::StrCat(" (line ", item.Mark().line + 1, ")")};
    ServerConfig own;
    std::set<std::string> seen;
    for (const auto& pair : item) {
      const std::string leaf = pair.first.IsScalar() ? pair.first.Scalar() : "";
      const std::string display = absl::StrCat(label, ".", leaf);
      const std::string key = PerModelKey(leaf);
      absl::Status status;
      if ((leaf == "name" || leaf == "path" || !key.empty()) && !seen.insert(leaf).second) {
        return error(pair.first, absl::StrCat("duplicate key '", display, "'"));
      }
      if (leaf == "name" || leaf == "path") {
        status = ParseYaml(display, pair.second, leaf == "name" ? entry.name : entry.path);
      } else if (!key.empty()) {
        WithField(own, key, [&](auto& field) { status = ParseYaml(display, pair.second, field); });
        entry.keys_set.push_back(key);
      } else {
        const std::string nearest = Nearest(leaf, EntryKeyList());
        return error(
            pair.first,
            nearest.empty()
                ? absl::StrCat("unknown key '", display, "'; an entry has ", EntryKeys(),
                               " (the other keys are server-wide)")
                : absl::StrCat("unknown key '", display, "'; did you mean '", nearest, "'?"));
      }
      if (!status.ok()) return error(pair.second, status.message());
      origins[display] = Origin{prefix, absl::StrCat(" (line ", pair.first.Mark().line + 1, ")")};
    }
    entry.model = own.model;
    entry.batching = own.batching;
    config.models.push_back(std::move(entry));
  }
  return absl::OkStatus();
}

std::vector<std::string> ModelListErrors(const ServerConfig& config, const OriginMap& origins) {
  std::vector<std::string> errors;
  const auto report = [&](const std::string& origin_key, absl::string_view message) {
    auto it = origins.find(origin_key);
    errors.push_back(it == origins.end()
                         ? std::string(message)
                         : absl::StrCat(it->second.prefix, ": ", message, it->second.suffix));
  };
  const std::vector<ModelEntry>& models = config.models;
  if (!models.empty() && !config.model.path.empty()) {
    report("model.path",
           "model.path and models are both set: give one model in model.path, or list every "
           "model in models");
  }
  if (!models.empty() && !config.model.name.empty()) {
    report("model.name", "model.name names model.path's model; entries of models have a name each");
  }
  std::map<std::string, int64_t> instances_on;  // device -> instances of every model
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string label = absl::StrCat("models[", i, "]");
    const std::string what = EntryLabel(models, i);
    if (absl::Status s = Check(label + ".name", models[i].name, ModelName{false}); !s.ok()) {
      report(label, absl::StrCat(what, ": ", s.message()));
    }
    for (size_t j = 0; j < i; ++j) {
      if (!models[i].name.empty() && models[j].name == models[i].name) {
        report(label, absl::StrCat(label, ".name '", models[i].name, "' is also ",
                                   EntryLabel(models, j), "'s: names must be unique"));
      }
    }
    if (models[i].path.empty()) {
      report(label, absl::StrCat(what, ": ", label, ".path is required (the model's export)"));
    }
    const ServerConfig resolved = ResolvedConfig(config, models[i]);
    const size_t errors_before = errors.size();
    const auto& set = models[i].keys_set;
    const auto is_set = [&](absl::string_view key) {
      return std::find(set.begin(), set.end(), key) != set.end();
    };
    VisitFields(resolved, [&](absl::string_view key, const auto& field, const auto& constraint,
                              absl::string_view) {
      // A key the entry sets, or an inherited one bounded by a key the entry sets.
      bool check = is_set(key);
      if constexpr (std::is_same_v<std::decay_t<decltype(constraint)>, IntListUpTo>) {
        check = check || is_set(constraint.max_key);
      }
      if (!check) return;
      const std::string display = absl::StrCat(label, ".", Leaf(key));
      if (absl::Status s = Check(display, field, constraint); !s.ok()) {
        report(display, absl::StrCat(what, ": ", s.message()));
      }
    });
    if (errors.size() > errors_before) continue;  // counted once its values are valid
    for (const std::string& device : resolved.model.devices) {
      instances_on[device == "cuda" ? "cuda:0" : device] += resolved.model.instances_per_device;
    }
  }
  for (const auto& [device, count] : instances_on) {
    if (count > 64) {
      report("models", absl::StrCat("models: ", count, " instances on ", device,
                                    " in all, more than 64; lower instances_per_device"));
    }
  }
  const bool default_valid =
      Check("model.default_model", config.model.default_model, ModelName{false}).ok();
  if (default_valid && errors.empty()) {
    std::vector<std::string> names;
    for (const ModelConfig& m : ResolveModels(config)) names.push_back(m.name);
    if (std::find(names.begin(), names.end(), config.model.default_model) == names.end()) {
      report("model.default_model",
             absl::StrCat("model.default_model '", config.model.default_model,
                          "' is not a served model (", absl::StrJoin(names, ", "), ")"));
    }
  }
  return errors;
}

std::string ModelListYaml(const ServerConfig& config) {
  std::string out =
      "\n# Several models in one server. Each entry has a name (what clients send as the model;\n"
      "# letters, digits, -, _, .), its export (path) and, where they differ from the model.* and\n"
      "# batching.* values above, its own:";
  size_t column = out.size() - out.rfind('\n');
  for (absl::string_view key : kPerModelKeys) {
    const std::string word = absl::StrCat(
        " ", Leaf(key), key == kPerModelKeys[std::size(kPerModelKeys) - 1] ? "." : ",");
    if (column + word.size() > 100) {
      out += "\n#";
      column = 1;
    }
    out += word;
    column += word.size();
  }
  out += "\n# [] = the one model of model.path. Only this file sets the list.\n";
  if (config.models.empty()) return out + "models: []\n";
  out += "models:\n";
  for (const ModelEntry& entry : config.models) {
    absl::StrAppend(&out, "  - name: ", FormatYaml(entry.name), "\n",
                    "    path: ", FormatYaml(entry.path), "\n");
    const ServerConfig own = EntryConfig(entry);
    for (const std::string& key : entry.keys_set) {
      WithField(own, key, [&](const auto& field) {
        absl::StrAppend(&out, "    ", Leaf(key), ": ", FormatYaml(field), "\n");
      });
    }
  }
  return out;
}

}  // namespace internal
}  // namespace dinov3::config
