// ApplyYamlFile: reads the config file, walks its mappings and sets the known keys. Unknown
// keys and sections, duplicate keys, type errors and YAML syntax errors name the file and line.
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "config/config_internal.h"
#include "config/field_values.h"

namespace dinov3::config::internal {
namespace {

// The part of `key` after its last '.'.
absl::string_view Leaf(absl::string_view key) {
  const size_t dot = key.rfind('.');
  return dot == absl::string_view::npos ? key : key.substr(dot + 1);
}

class YamlWalker {
 public:
  YamlWalker(const std::string& path, ServerConfig& config, OriginMap& origins)
      : prefix_(absl::StrCat("config file ", path)), config_(config), origins_(origins) {
    for (const std::string& key : KnownKeys()) {
      keys_.push_back(key);
      for (size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', dot + 1)) {
        sections_.insert(key.substr(0, dot));
      }
    }
  }

  absl::Status Walk(const YAML::Node& map, const std::string& section) {
    for (const auto& entry : map) {
      const std::string line = absl::StrCat(" (line ", entry.first.Mark().line + 1, ")");
      if (!entry.first.IsScalar()) return Error("keys must be plain names", line);
      const std::string key =
          section.empty() ? entry.first.Scalar() : absl::StrCat(section, ".", entry.first.Scalar());
      if (!seen_.insert(key).second) return Error(absl::StrCat("duplicate key '", key, "'"), line);
      absl::Status status;
      if (key == "models") {
        if (absl::Status s = ParseModelList(entry.second, prefix_, config_, origins_); !s.ok()) {
          return s;
        }
        origins_[key] = Origin{prefix_, line};
      } else if (WithField(config_, key,
                           [&](auto& field) { status = ParseYaml(key, entry.second, field); })) {
        if (!status.ok()) return Error(status.message(), line);
        origins_[key] = Origin{prefix_, line};
      } else if (sections_.count(key) > 0) {
        if (entry.second.IsNull()) continue;  // an empty section
        if (!entry.second.IsMap()) {
          return Error(absl::StrCat(key, " must be a mapping of keys (", KeysOf(key), ")"), line);
        }
        if (absl::Status s = Walk(entry.second, key); !s.ok()) return s;
      } else {
        return Error(UnknownKey(key, section, entry.second.IsMap()), line);
      }
    }
    return absl::OkStatus();
  }

  absl::Status Error(absl::string_view message, absl::string_view suffix) const {
    return absl::InvalidArgumentError(absl::StrCat(prefix_, ": ", message, suffix));
  }

 private:
  // "server, model, ..." for the top level; "max_batch_size, ..." for a section.
  std::string KeysOf(const std::string& section) const {
    std::vector<std::string> names;
    for (const std::string& key : keys_) {
      absl::string_view rest = key;
      if (!section.empty() && !absl::ConsumePrefix(&rest, absl::StrCat(section, "."))) continue;
      std::string name(rest.substr(0, rest.find('.')));
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    return absl::StrJoin(names, ", ");
  }

  std::string UnknownKey(const std::string& key, const std::string& section, bool is_map) const {
    std::vector<std::string> candidates = keys_;
    candidates.insert(candidates.end(), sections_.begin(), sections_.end());
    std::string nearest = Nearest(key, candidates);
    for (const std::string& candidate : keys_) {  // the right name in the wrong section
      if (nearest.empty() && Leaf(candidate) == Leaf(key)) nearest = candidate;
    }
    const std::string what = section.empty() && is_map ? "section" : "key";
    if (!nearest.empty()) {
      return absl::StrCat("unknown ", what, " '", key, "'; did you mean '", nearest, "'?");
    }
    return absl::StrCat("unknown ", what, " '", key, "'; known ",
                        section.empty() ? "sections" : absl::StrCat("keys of ", section), ": ",
                        KeysOf(section));
  }

  const std::string prefix_;
  ServerConfig& config_;
  OriginMap& origins_;
  std::vector<std::string> keys_;
  std::set<std::string> sections_;
  std::set<std::string> seen_;
};

}  // namespace

absl::Status ApplyYamlFile(const std::string& path, ServerConfig& config, OriginMap& origins) {
  YamlWalker walker(path, config, origins);
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    return walker.Error(absl::StrCat("cannot read: ", std::strerror(errno)), "");
  }
  if (!S_ISREG(info.st_mode)) return walker.Error("not a regular file (a directory?)", "");
  std::ifstream in(path);
  if (!in) return walker.Error(absl::StrCat("cannot read: ", std::strerror(errno)), "");
  std::stringstream text;
  if (info.st_size > 0 && !(text << in.rdbuf())) return walker.Error("cannot read the file", "");
  YAML::Node root;
  try {
    root = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    return walker.Error(absl::StrCat("YAML syntax error at line ", e.mark.line + 1, ", column ",
                                     e.mark.column + 1, ": ", e.msg),
                        "");
  }
  if (root.IsNull()) return absl::OkStatus();  // empty, or only comments
  if (!root.IsMap()) {
    return walker.Error("the top level must be a mapping of sections (server:, model:, ...)", "");
  }
  return walker.Walk(root, "");
}

}  // namespace dinov3::config::internal
