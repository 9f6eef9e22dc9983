// The memory limit of the container this process runs in, from its cgroup: v2 `memory.max` of
// the process's own cgroup (from /proc/self/cgroup), else at the cgroup root; v1
// `memory.limit_in_bytes` of the memory controller's cgroup, else at its root. "max" and v1's
// near-2^63 "unlimited" read as no limit. And the default memory budget derived from it.
// Pure file reads; the root directories are parameters so tests can fake a cgroup tree.
// Thread-safe.
#ifndef DINOV3_SERVER_COMMON_MEMORY_LIMIT_H_
#define DINOV3_SERVER_COMMON_MEMORY_LIMIT_H_

#include <cstdint>
#include <optional>
#include <string>

namespace dinov3 {

// The limit in bytes, or nullopt when there is none (or it cannot be read).
std::optional<int64_t> ContainerMemoryLimit(const std::string& cgroup_root = "/sys/fs/cgroup",
                                            const std::string& proc_self_cgroup =
                                                "/proc/self/cgroup");

// The default of limits.memory_budget_bytes: kBudgetFractionOfLimit of the container's limit,
// or kBudgetWithoutLimit when there is none.
inline constexpr double kBudgetFractionOfLimit = 0.5;
inline constexpr int64_t kBudgetWithoutLimit = int64_t{4} << 30;

struct DefaultBudget {
  int64_t bytes = 0;
  std::string derivation;  // for the start-up log, e.g. "50% of the cgroup limit 8589934592"
};
DefaultBudget DefaultMemoryBudget(std::optional<int64_t> container_limit);

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_MEMORY_LIMIT_H_
