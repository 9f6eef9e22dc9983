#include "server/common/cpu_features.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace dinov3 {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr char kSapphireRapids[] =
    "processor\t: 0\n"
    "vendor_id\t: GenuineIntel\n"
    "model name\t: Intel(R) Xeon(R) Platinum 8480+\n"
    "flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 "
    "amx_tile amx_int8 avx_vnni\n"
    "\n"
    "processor\t: 1\n"
    "model name\t: something else\n"
    "flags\t\t: fpu\n";

TEST(CpuFeaturesTest, ReportsTheListedFeaturesInTheirOrder) {
  const CpuFeatures cpu = ParseCpuInfo(kSapphireRapids);
  EXPECT_EQ(cpu.model, "Intel(R) Xeon(R) Platinum 8480+");
  EXPECT_THAT(cpu.features, ElementsAre("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8",
                                        "avx512_fp16", "avx512_vnni", "avx_vnni"));
  EXPECT_TRUE(cpu.Has("amx_bf16"));
  EXPECT_FALSE(cpu.Has("amx_tile"));  // present but not reported
  EXPECT_EQ(cpu.Describe(),
            "Intel(R) Xeon(R) Platinum 8480+; avx2 avx512f avx512_bf16 amx_bf16 amx_int8 "
            "avx512_fp16 avx512_vnni avx_vnni");
}

TEST(CpuFeaturesTest, FlagsAreMatchedWhole) {
  EXPECT_FALSE(ParseCpuInfo("model name : EPYC\nflags : avx2 avx512f avx512_vnni\n")
                   .Has("avx512_bf16"));
  EXPECT_TRUE(ParseCpuInfo("flags : avx2 avx512_bf16\n").Has("avx512_bf16"));
  // avx512_bf16x is not avx512_bf16, xamx_bf16 is not amx_bf16.
  const CpuFeatures lookalikes = ParseCpuInfo("flags : avx512_bf16x xamx_bf16\n");
  EXPECT_FALSE(lookalikes.Has("avx512_bf16"));
  EXPECT_FALSE(lookalikes.Has("amx_bf16"));
}

TEST(CpuFeaturesTest, OtherArchitecturesAndEmptyTextGiveNoFeatures) {
  const CpuFeatures arm = ParseCpuInfo("processor : 0\nFeatures : fp asimd bf16\n");
  EXPECT_THAT(arm.features, IsEmpty());
  EXPECT_FALSE(arm.Has("amx_bf16"));
  EXPECT_EQ(arm.Describe(),
            "unknown CPU; none of avx2 avx512f avx512_bf16 amx_bf16 amx_int8 avx512_fp16 "
            "avx512_vnni avx_vnni");
  EXPECT_THAT(ParseCpuInfo("").features, IsEmpty());
}

TEST(CpuFeaturesTest, ReadsAFileAndToleratesAMissingOne) {
  const std::filesystem::path path =
      std::filesystem::path(testing::TempDir()) / "cpu_features_test_cpuinfo";
  std::ofstream(path) << kSapphireRapids;
  EXPECT_TRUE(ReadCpuFeatures(path.string()).Has("amx_int8"));
  EXPECT_THAT(ReadCpuFeatures((path.string() + ".missing")).features, IsEmpty());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace dinov3
