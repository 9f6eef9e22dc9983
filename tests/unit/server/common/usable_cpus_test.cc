#include "server/common/usable_cpus.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace dinov3 {
namespace {

namespace fs = std::filesystem;

class ContainerCpuQuotaTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(testing::TempDir()) /
            ("cpu_cgroup_" +
             std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    paths_ = {.cgroup_root = root_.string(), .proc_self_cgroup = (root_ / "proc_self").string()};
  }
  void Write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }
  std::optional<CpuQuota> Quota() { return ContainerCpuQuota(paths_); }
  // The usable CPUs on a 16-CPU machine with `affinity` CPUs in the mask.
  UsableCpus Usable(int affinity) { return CombineUsableCpus({affinity, 16}, Quota()); }

  fs::path root_;
  CgroupPaths paths_;
};

TEST_F(ContainerCpuQuotaTest, CgroupV2Quota) {
  Write(paths_.proc_self_cgroup, "0::/kubepods/pod1/ctr\n");
  Write(root_ / "kubepods/pod1/ctr/cpu.max", "400000 100000\n");
  Write(root_ / "cpu.max", "max 100000\n");
  std::optional<CpuQuota> quota = Quota();
  ASSERT_TRUE(quota.has_value());
  EXPECT_EQ(quota->quota_us, 400000);
  EXPECT_EQ(quota->period_us, 100000);
  EXPECT_EQ(quota->RoundedUpCpus(), 4);
  const UsableCpus usable = Usable(16);
  EXPECT_EQ(usable.count, 4);
  EXPECT_EQ(usable.derivation,
            "4 usable CPUs (affinity mask 16 of 16 online; cgroup v2 cpu.max 400000/100000 = 4)");
}

TEST_F(ContainerCpuQuotaTest, CgroupV2SmallestQuotaOfTheAncestors) {
  Write(paths_.proc_self_cgroup, "0::/kubepods/pod1/ctr\n");
  Write(root_ / "kubepods/pod1/ctr/cpu.max", "max 100000\n");
  Write(root_ / "kubepods/pod1/cpu.max", "200000 100000\n");
  Write(root_ / "kubepods/cpu.max", "800000 100000\n");
  EXPECT_EQ(Usable(16).count, 2);
}

TEST_F(ContainerCpuQuotaTest, CgroupV2RootInsideAContainerNamespace) {
  Write(paths_.proc_self_cgroup, "0::/\n");
  Write(root_ / "cpu.max", "200000 100000\n");
  EXPECT_EQ(Usable(16).count, 2);
}

TEST_F(ContainerCpuQuotaTest, CgroupV2MaxIsNoQuota) {
  Write(paths_.proc_self_cgroup, "0::/\n");
  Write(root_ / "cpu.max", "max 100000\n");
  EXPECT_EQ(Quota(), std::nullopt);
  const UsableCpus usable = Usable(16);
  EXPECT_EQ(usable.count, 16);
  EXPECT_EQ(usable.derivation, "16 usable CPUs (affinity mask 16 of 16 online; no CPU quota)");
}

TEST_F(ContainerCpuQuotaTest, FractionalQuotaRoundsUp) {
  Write(paths_.proc_self_cgroup, "0::/\n");
  Write(root_ / "cpu.max", "150000 100000\n");
  const UsableCpus usable = Usable(16);
  EXPECT_EQ(usable.count, 2);
  EXPECT_EQ(usable.derivation,
            "2 usable CPUs (affinity mask 16 of 16 online; cgroup v2 cpu.max 150000/100000 = 1.5, "
            "rounded up to 2)");
}

TEST_F(ContainerCpuQuotaTest, QuotaBelowOneCpuIsOne) {
  Write(paths_.proc_self_cgroup, "0::/\n");
  Write(root_ / "cpu.max", "50000 100000\n");
  const UsableCpus usable = Usable(16);
  EXPECT_EQ(usable.count, 1);
  EXPECT_EQ(usable.derivation.rfind("1 usable CPU (", 0), 0u) << usable.derivation;
}

TEST_F(ContainerCpuQuotaTest, QuotaAboveTheAffinityCountKeepsTheAffinityCount) {
  Write(paths_.proc_self_cgroup, "0::/\n");
  Write(root_ / "cpu.max", "800000 100000\n");
  const UsableCpus usable = Usable(2);
  EXPECT_EQ(usable.count, 2);
  EXPECT_EQ(usable.derivation,
            "2 usable CPUs (affinity mask 2 of 16 online; cgroup v2 cpu.max 800000/100000 = 8)");
}

TEST_F(ContainerCpuQuotaTest, CgroupV1CpuController) {
  Write(paths_.proc_self_cgroup, "5:cpuset:/x\n4:cpu,cpuacct:/docker/abc\n0::/\n");
  Write(root_ / "cpu/docker/abc/cpu.cfs_quota_us", "300000\n");
  Write(root_ / "cpu/docker/abc/cpu.cfs_period_us", "100000\n");
  const UsableCpus usable = Usable(16);
  EXPECT_EQ(usable.count, 3);
  EXPECT_EQ(usable.derivation,
            "3 usable CPUs (affinity mask 16 of 16 online; cgroup v1 "
            "cpu.cfs_quota_us/cpu.cfs_period_us 300000/100000 = 3)");
}

TEST_F(ContainerCpuQuotaTest, CgroupV1CombinedMountAtItsRoot) {
  Write(paths_.proc_self_cgroup, "4:cpuacct,cpu:/docker/abc\n");  // namespaced: mount is the root
  Write(root_ / "cpu,cpuacct/cpu.cfs_quota_us", "250000\n");
  Write(root_ / "cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(Usable(16).count, 3);
}

TEST_F(ContainerCpuQuotaTest, CgroupV1MinusOneIsNoQuota) {
  Write(paths_.proc_self_cgroup, "4:cpu:/a\n");
  Write(root_ / "cpu/a/cpu.cfs_quota_us", "-1\n");
  Write(root_ / "cpu/a/cpu.cfs_period_us", "100000\n");
  Write(root_ / "cpu/cpu.cfs_quota_us", "-1\n");
  Write(root_ / "cpu/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(Quota(), std::nullopt);
}

TEST_F(ContainerCpuQuotaTest, CgroupV1QuotaWithoutPeriodIsNoQuota) {
  Write(paths_.proc_self_cgroup, "4:cpu:/\n");
  Write(root_ / "cpu/cpu.cfs_quota_us", "200000\n");
  EXPECT_EQ(Quota(), std::nullopt);
}

TEST_F(ContainerCpuQuotaTest, MissingFilesAreNoQuota) {
  EXPECT_EQ(Quota(), std::nullopt);
  EXPECT_EQ(Usable(3).count, 3);
}

TEST_F(ContainerCpuQuotaTest, GarbageIsNoQuota) {
  Write(paths_.proc_self_cgroup, "garbage\n0::/a\n");
  for (const char* text : {"", "lots", "400000", "400000 x", "x 100000", "0 100000", "400000 0",
                           "-5 100000", "1 2 3", "99999999999999999999 100000"}) {
    Write(root_ / "a/cpu.max", text);
    Write(root_ / "cpu/cpu.cfs_quota_us", text);
    Write(root_ / "cpu/cpu.cfs_period_us", "period");
    EXPECT_EQ(Quota(), std::nullopt) << "'" << text << "'";
  }
}

TEST(CombineUsableCpusTest, UnreadableAffinityFallsBackToTheOnlineCpus) {
  EXPECT_EQ(CombineUsableCpus({0, 8}, std::nullopt).count, 8);
  EXPECT_EQ(CombineUsableCpus({0, 0}, std::nullopt).count, 1);
  EXPECT_EQ(CombineUsableCpus({0, 0}, CpuQuota{300000, 100000, "q"}).count, 3);
}

TEST(ProcessAffinityCpusTest, MatchesSchedGetaffinity) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const AffinityCpus cpus = ProcessAffinityCpus();
  EXPECT_EQ(cpus.usable, CPU_COUNT(&set));
  EXPECT_GE(cpus.online, cpus.usable);
  // Whatever the machine's cgroups say, the result never exceeds the affinity mask.
  const UsableCpus usable = DetectUsableCpus();
  EXPECT_GE(usable.count, 1);
  EXPECT_LE(usable.count, CPU_COUNT(&set));
}

}  // namespace
}  // namespace dinov3
