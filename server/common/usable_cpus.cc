#include "server/common/usable_cpus.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace dinov3 {
namespace {

std::optional<std::string> ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return std::string(absl::StripAsciiWhitespace(line));
}

std::optional<int64_t> ReadPositive(const std::string& path) {
  std::optional<std::string> text = ReadFirstLine(path);
  int64_t value = 0;
  if (!text || !absl::SimpleAtoi(*text, &value) || value <= 0) return std::nullopt;
  return value;
}

// v2 `cpu.max`: "QUOTA PERIOD"; "max PERIOD" is no quota.
std::optional<CpuQuota> ReadCpuMax(const std::string& dir) {
  std::optional<std::string> text = ReadFirstLine(absl::StrCat(dir, "/cpu.max"));
  if (!text) return std::nullopt;
  std::vector<std::string> fields = absl::StrSplit(*text, ' ', absl::SkipEmpty());
  CpuQuota quota{.source = "cgroup v2 cpu.max"};
  if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &quota.quota_us) ||
      !absl::SimpleAtoi(fields[1], &quota.period_us) || quota.quota_us <= 0 ||
      quota.period_us <= 0) {
    return std::nullopt;
  }
  return quota;
}

// v1 `cpu.cfs_quota_us` (-1 is no quota) and `cpu.cfs_period_us`.
std::optional<CpuQuota> ReadCfsQuota(const std::string& dir) {
  std::optional<int64_t> quota = ReadPositive(absl::StrCat(dir, "/cpu.cfs_quota_us"));
  std::optional<int64_t> period = ReadPositive(absl::StrCat(dir, "/cpu.cfs_period_us"));
  if (!quota || !period) return std::nullopt;
  return CpuQuota{*quota, *period, "cgroup v1 cpu.cfs_quota_us/cpu.cfs_period_us"};
}

// The cgroup path of this process for v2 ("0::/path") or for v1's cpu controller ("N:cpu:/path"
// or a controller list containing cpu); "" when not listed. As in memory_limit.cc.
std::string OwnCgroupPath(const std::string& proc_self_cgroup, bool v2) {
  std::ifstream in(proc_self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    if (v2 && parts[0] == "0" && parts[1].empty()) return parts[2];
    if (!v2) {
      for (absl::string_view c : absl::StrSplit(parts[1], ',')) {
        if (c == "cpu") return parts[2];
      }
    }
  }
  return "";
}

// `root` + `path` and each of its ancestors, ending with `root` itself.
std::vector<std::string> DirAndAncestors(const std::string& root, std::string path) {
  std::vector<std::string> dirs;
  while (!path.empty() && path != "/") {
    dirs.push_back(absl::StrCat(root, path));
    path.erase(path.rfind('/'));
  }
  dirs.push_back(root);
  return dirs;
}

// Whether `a` allows fewer CPUs than `b`, or `b` is none.
bool Smaller(const CpuQuota& a, const std::optional<CpuQuota>& b) {
  return !b || static_cast<long double>(a.quota_us) * b->period_us <
                   static_cast<long double>(b->quota_us) * a.period_us;
}

}  // namespace

int CpuQuota::RoundedUpCpus() const {
  if (quota_us <= 0 || period_us <= 0) return 1;
  const int64_t cpus = quota_us / period_us + (quota_us % period_us != 0 ? 1 : 0);
  return static_cast<int>(std::clamp<int64_t>(cpus, 1, INT_MAX));
}

std::optional<CpuQuota> ContainerCpuQuota(const CgroupPaths& paths) {
  std::optional<CpuQuota> smallest;
  const auto consider = [&smallest](std::optional<CpuQuota> quota) {
    if (quota && Smaller(*quota, smallest)) smallest = std::move(quota);
  };
  for (const std::string& dir :
       DirAndAncestors(paths.cgroup_root, OwnCgroupPath(paths.proc_self_cgroup, /*v2=*/true))) {
    consider(ReadCpuMax(dir));
  }
  const std::string v1_path = OwnCgroupPath(paths.proc_self_cgroup, /*v2=*/false);
  for (const char* controller : {"/cpu", "/cpu,cpuacct"}) {
    for (const std::string& dir :
         DirAndAncestors(absl::StrCat(paths.cgroup_root, controller), v1_path)) {
      consider(ReadCfsQuota(dir));
    }
  }
  return smallest;
}

AffinityCpus ProcessAffinityCpus() {
  AffinityCpus cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus.usable = CPU_COUNT(&set);
  cpus.online = static_cast<int>(std::max(0L, sysconf(_SC_NPROCESSORS_ONLN)));
  return cpus;
}

UsableCpus CombineUsableCpus(const AffinityCpus& affinity, const std::optional<CpuQuota>& quota) {
  int count = affinity.usable > 0 ? affinity.usable : affinity.online;
  std::string affinity_text =
      affinity.usable > 0
          ? absl::StrCat("affinity mask ", affinity.usable, " of ", affinity.online, " online")
          : absl::StrCat("affinity mask unreadable, ", affinity.online, " online");
  std::string quota_text = "no CPU quota";
  if (quota) {
    const int quota_cpus = quota->RoundedUpCpus();
    count = count > 0 ? std::min(count, quota_cpus) : quota_cpus;
    quota_text = absl::StrCat(quota->source, " ", quota->quota_us, "/", quota->period_us, " = ");
    if (quota->quota_us % quota->period_us == 0) {
      absl::StrAppend(&quota_text, quota_cpus);
    } else {
      absl::StrAppend(&quota_text,
                      static_cast<double>(quota->quota_us) / static_cast<double>(quota->period_us),
                      ", rounded up to ", quota_cpus);
    }
  }
  count = std::max(count, 1);
  return {count, absl::StrCat(count, count == 1 ? " usable CPU (" : " usable CPUs (", affinity_text,
                              "; ", quota_text, ")")};
}

UsableCpus DetectUsableCpus(const CgroupPaths& paths) {
  return CombineUsableCpus(ProcessAffinityCpus(), ContainerCpuQuota(paths));
}

}  // namespace dinov3
