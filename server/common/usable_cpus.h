// How many CPUs this process can use, for the defaults of model.intra_op_threads and
// server.preprocess_threads: the smaller of (a) the CPUs in the affinity mask
// (sched_getaffinity; taskset, cpuset, Kubernetes' static CPU manager) and (b) the container's
// CPU quota from its cgroup, rounded up (1.5 CPUs -> 2); at least 1.
//
// The quota is read like ContainerMemoryLimit (memory_limit.h) reads the memory limit: v2
// `cpu.max` ("QUOTA PERIOD", "max PERIOD" = no quota) of the process's own cgroup (from
// /proc/self/cgroup) and each of its ancestors up to the cgroup root; v1
// `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1 = no quota) of the cpu controller's cgroup
// and its ancestors under <root>/cpu (or <root>/cpu,cpuacct). The smallest quota found wins.
// Missing or unreadable files and garbage contents read as no quota: never an error. Pure file
// reads; the paths are parameters so tests can fake a cgroup tree. Thread-safe.
#ifndef DINOV3_SERVER_COMMON_USABLE_CPUS_H_
#define DINOV3_SERVER_COMMON_USABLE_CPUS_H_

#include <cstdint>
#include <optional>
#include <string>

namespace dinov3 {

struct CgroupPaths {
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string proc_self_cgroup = "/proc/self/cgroup";
};

// A CPU quota: `quota_us` of CPU time per `period_us` (both > 0).
struct CpuQuota {
  int64_t quota_us = 0;
  int64_t period_us = 0;
  std::string source;  // where it was read, e.g. "cgroup v2 cpu.max"
  int RoundedUpCpus() const;
};

// The smallest CPU quota of the process's cgroups, or nullopt when there is none.
std::optional<CpuQuota> ContainerCpuQuota(const CgroupPaths& paths = {});

// The CPUs in the affinity mask of the calling thread and the online CPUs of the machine.
// `usable` is 0 when sched_getaffinity fails.
struct AffinityCpus {
  int usable = 0;
  int online = 0;
};
AffinityCpus ProcessAffinityCpus();

struct UsableCpus {
  int count = 1;           // >= 1
  std::string derivation;  // one line for the start-up log, e.g. "2 usable CPUs (affinity
                           // mask 2 of 16 online; cgroup v2 cpu.max 200000/100000 = 2)"
};
// min(affinity, rounded-up quota), at least 1. Pure: the parts are given.
UsableCpus CombineUsableCpus(const AffinityCpus& affinity, const std::optional<CpuQuota>& quota);

// CombineUsableCpus(ProcessAffinityCpus(), ContainerCpuQuota(paths)).
UsableCpus DetectUsableCpus(const CgroupPaths& paths = {});

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_USABLE_CPUS_H_
