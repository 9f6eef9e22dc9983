// model.compute_dtype: what each value resolves to, with the CPU injected (never the test
// machine's own), and ModelEngine::Load applying it to its instances.
#include "server/engine/compute_dtype.h"

#include <gtest/gtest.h>

#include "server/engine/model_engine.h"
#include "tests/unit/server/engine/engine_test_util.h"

namespace dinov3::engine {
namespace {

CpuFeatures Cpu(std::vector<std::string> features) {
  CpuFeatures cpu;
  cpu.model = "test CPU";
  cpu.features = std::move(features);
  return cpu;
}

TEST(ComputeDtypeTest, AutoFollowsTheDeviceAndTheCpu) {
  const CpuFeatures sapphire_rapids = Cpu({"avx2", "avx512f", "avx512_bf16", "amx_bf16"});
  const CpuFeatures cooper_lake = Cpu({"avx2", "avx512f", "avx512_bf16"});
  const CpuFeatures amx_only = Cpu({"amx_bf16"});
  const CpuFeatures epyc_zen3 = Cpu({"avx2"});
  const CpuFeatures skylake = Cpu({"avx2", "avx512f", "avx512_vnni"});
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", false, sapphire_rapids), "bfloat16");
  // AVX512_BF16 without AMX: bfloat16 measured slower than float32 (compute_dtype.h).
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", false, cooper_lake), "float32");
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", false, amx_only), "bfloat16");
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", false, epyc_zen3), "float32");
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", false, skylake), "float32");
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", false, CpuFeatures{}), "float32");
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", true, epyc_zen3), "float16");
  EXPECT_EQ(ResolveComputeDtype("auto", "float32", true, sapphire_rapids), "float16");
}

TEST(ComputeDtypeTest, AnInt8ExportComputesAsExportedUnderAuto) {
  const CpuFeatures sapphire_rapids = Cpu({"avx2", "avx512f", "avx512_bf16", "amx_bf16"});
  EXPECT_EQ(ResolveComputeDtype("auto", "int8", false, sapphire_rapids), "");
  EXPECT_EQ(ResolveComputeDtype("auto", "int8", false, Cpu({"avx2"})), "");
  EXPECT_EQ(ResolveComputeDtype("export", "int8", false, sapphire_rapids), "");
  // An explicit dtype is passed on: the runtime refuses it for an int8 export.
  EXPECT_EQ(ResolveComputeDtype("bfloat16", "int8", false, sapphire_rapids), "bfloat16");
  // A bfloat16 export on a CPU without AMX computes in float32 under auto.
  EXPECT_EQ(ResolveComputeDtype("auto", "bfloat16", false, Cpu({"avx2"})), "float32");
}

TEST(ComputeDtypeTest, ExplicitValuesIgnoreTheCpu) {
  const CpuFeatures none;
  EXPECT_EQ(ResolveComputeDtype("export", "float32", false, none), "");
  EXPECT_EQ(ResolveComputeDtype("export", "float32", true, none), "");
  for (const char* dtype : {"float32", "bfloat16", "float16"}) {
    EXPECT_EQ(ResolveComputeDtype(dtype, "float32", false, none), dtype);
    EXPECT_EQ(ResolveComputeDtype(dtype, "float32", true, none), dtype);
  }
}

TEST(ComputeDtypeTest, EngineInstancesComputeInTheResolvedDtype) {
  if (test_util::TestDevice() != "cpu") GTEST_SKIP() << "CPU resolution only";
  EngineOptions options;
  options.intra_op_threads = 1;
  options.warmup_max_batch_size = 1;
  options.compute_dtype = "auto";
  options.cpu = Cpu({"amx_bf16"});
  auto bf16 = ModelEngine::Load(test_util::ModelPath(), options);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  EXPECT_EQ((*bf16)->metadata().compute_dtype, "bfloat16");
  EXPECT_EQ((*bf16)->metadata().dtype, "float32");

  options.cpu = Cpu({"avx2", "avx512_bf16"});
  auto f32 = ModelEngine::Load(test_util::ModelPath(), options);
  ASSERT_TRUE(f32.ok()) << f32.status();
  EXPECT_EQ((*f32)->metadata().compute_dtype, "float32");

  options.compute_dtype = "export";
  options.cpu = Cpu({"amx_bf16"});
  auto exported = ModelEngine::Load(test_util::ModelPath(), options);
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ((*exported)->metadata().compute_dtype, "float32");
}

}  // namespace
}  // namespace dinov3::engine
