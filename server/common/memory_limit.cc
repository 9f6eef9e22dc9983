#include "server/common/memory_limit.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace dinov3 {
namespace {

// v1 writes "no limit" as the largest page-aligned int64 (9223372036854771712): anything at or
// above 2^60 bytes is no limit.
constexpr int64_t kUnlimited = int64_t{1} << 60;

std::optional<std::string> ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(line));
}

std::optional<int64_t> ReadLimitFile(const std::string& path) {
  std::optional<std::string> text = ReadFirstLine(path);
  int64_t bytes = 0;
  if (!text || *text == "max" || !absl::SimpleAtoi(*text, &bytes)) return std::nullopt;
  if (bytes <= 0 || bytes >= kUnlimited) return std::nullopt;
  return bytes;
}

// The cgroup path of this process for v2 ("0::/path") or for v1's memory controller
// ("N:memory:/path" or a controller list containing memory); "" when not listed.
std::string OwnCgroupPath(const std::string& proc_self_cgroup, bool v2) {
  std::ifstream in(proc_self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    if (v2 && parts[0] == "0" && parts[1].empty()) return parts[2];
    if (!v2) {
      for (absl::string_view c : absl::StrSplit(parts[1], ',')) {
        if (c == "memory") return parts[2];
      }
    }
  }
  return "";
}

}  // namespace

std::optional<int64_t> ContainerMemoryLimit(const std::string& cgroup_root,
                                            const std::string& proc_self_cgroup) {
  const std::string v2_path = OwnCgroupPath(proc_self_cgroup, /*v2=*/true);
  for (const std::string& dir : {absl::StrCat(cgroup_root, v2_path), cgroup_root}) {
    if (std::optional<int64_t> limit = ReadLimitFile(absl::StrCat(dir, "/memory.max"))) {
      return limit;
    }
  }
  const std::string v1_root = absl::StrCat(cgroup_root, "/memory");
  const std::string v1_path = OwnCgroupPath(proc_self_cgroup, /*v2=*/false);
  for (const std::string& dir : {absl::StrCat(v1_root, v1_path), v1_root}) {
    if (std::optional<int64_t> limit = ReadLimitFile(absl::StrCat(dir, "/memory.limit_in_bytes"))) {
      return limit;
    }
  }
  return std::nullopt;
}

DefaultBudget DefaultMemoryBudget(std::optional<int64_t> container_limit) {
  if (!container_limit) {
    return {kBudgetWithoutLimit,
            absl::StrCat("no container memory limit found; the fixed default ",
                         kBudgetWithoutLimit, " bytes")};
  }
  const auto bytes = static_cast<int64_t>(static_cast<double>(*container_limit) *
                                          kBudgetFractionOfLimit);
  return {bytes, absl::StrCat(static_cast<int>(kBudgetFractionOfLimit * 100),
                              "% of the container memory limit ", *container_limit, " bytes")};
}

}  // namespace dinov3
