#include "server/common/memory_limit.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace dinov3 {
namespace {

namespace fs = std::filesystem;

class MemoryLimitTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(testing::TempDir()) /
            ("cgroup_" + std::string(testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    proc_ = (root_ / "proc_self_cgroup").string();
  }
  void Write(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
  }
  std::optional<int64_t> Limit() { return ContainerMemoryLimit(root_.string(), proc_); }

  fs::path root_;
  std::string proc_;
};

TEST_F(MemoryLimitTest, CgroupV2OwnCgroupFirst) {
  Write(proc_, "0::/kubepods/pod1/ctr\n");
  Write(root_ / "kubepods/pod1/ctr/memory.max", "8589934592\n");
  Write(root_ / "memory.max", "max\n");
  EXPECT_EQ(Limit(), int64_t{8589934592});
}

TEST_F(MemoryLimitTest, CgroupV2RootInsideAContainerNamespace) {
  Write(proc_, "0::/\n");
  Write(root_ / "memory.max", "2147483648\n");
  EXPECT_EQ(Limit(), int64_t{2147483648});
}

TEST_F(MemoryLimitTest, CgroupV2MaxIsNoLimit) {
  Write(proc_, "0::/\n");
  Write(root_ / "memory.max", "max\n");
  EXPECT_EQ(Limit(), std::nullopt);
}

TEST_F(MemoryLimitTest, CgroupV1MemoryController) {
  Write(proc_, "5:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n");
  Write(root_ / "memory/docker/abc/memory.limit_in_bytes", "1073741824\n");
  EXPECT_EQ(Limit(), int64_t{1073741824});
}

TEST_F(MemoryLimitTest, CgroupV1UnlimitedIsNoLimit) {
  Write(proc_, "4:memory:/a\n");
  Write(root_ / "memory/a/memory.limit_in_bytes", "9223372036854771712\n");
  Write(root_ / "memory/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(Limit(), std::nullopt);
}

TEST_F(MemoryLimitTest, NothingReadableIsNoLimit) { EXPECT_EQ(Limit(), std::nullopt); }

TEST(DefaultMemoryBudgetTest, HalfOfTheLimitOrTheFixedDefault) {
  EXPECT_EQ(DefaultMemoryBudget(int64_t{8} << 30).bytes, int64_t{4} << 30);
  EXPECT_NE(DefaultMemoryBudget(int64_t{8} << 30).derivation.find("50%"), std::string::npos);
  EXPECT_EQ(DefaultMemoryBudget(std::nullopt).bytes, kBudgetWithoutLimit);
}

}  // namespace
}  // namespace dinov3
