#include "server/common/cpu_features.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dinov3 {
namespace {

// With a "key<tabs>: value" line whose key is `key`: sets *value and returns true.
bool LineValue(absl::string_view line, absl::string_view key, absl::string_view* value) {
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return false;
  if (absl::StripAsciiWhitespace(line.substr(0, colon)) != key) return false;
  *value = absl::StripAsciiWhitespace(line.substr(colon + 1));
  return true;
}

}  // namespace

bool CpuFeatures::Has(absl::string_view feature) const {
  return std::find(features.begin(), features.end(), feature) != features.end();
}

std::string CpuFeatures::Describe() const {
  const std::string name = model.empty() ? "unknown CPU" : model;
  if (features.empty()) {
    return name + "; none of " + absl::StrJoin(kReportedCpuFeatures, " ");
  }
  return name + "; " + absl::StrJoin(features, " ");
}

CpuFeatures ParseCpuInfo(absl::string_view cpuinfo) {
  CpuFeatures cpu;
  bool have_flags = false;
  absl::flat_hash_set<absl::string_view> flags;
  for (absl::string_view line : absl::StrSplit(cpuinfo, '\n')) {
    absl::string_view value;
    if (cpu.model.empty() && LineValue(line, "model name", &value)) {
      cpu.model = std::string(value);
    } else if (!have_flags && LineValue(line, "flags", &value)) {
      have_flags = true;
      for (absl::string_view flag : absl::StrSplit(value, ' ', absl::SkipEmpty())) {
        flags.insert(flag);
      }
    }
    if (have_flags && !cpu.model.empty()) break;
  }
  for (absl::string_view feature : kReportedCpuFeatures) {
    if (flags.contains(feature)) cpu.features.emplace_back(feature);
  }
  return cpu;
}

CpuFeatures ReadCpuFeatures(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  return ParseCpuInfo(text.str());
}

}  // namespace dinov3
