// The CPU the server runs on, as far as it decides how fast a model computes: the model name
// and the x86 features that give native reduced precision (bfloat16 dot products on AVX512_BF16
// or AMX, int8 on VNNI or AMX, float16 on AVX512_FP16), read from /proc/cpuinfo. Reported in
// the start-up log, GetModelInfo and the dinov3_cpu_info metric, and used by
// model.compute_dtype=auto. Pure text parsing; the file path is a parameter so tests can give
// any CPU. Thread-safe.
#ifndef DINOV3_SERVER_COMMON_CPU_FEATURES_H_
#define DINOV3_SERVER_COMMON_CPU_FEATURES_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace dinov3 {

// The features reported, in this order, with the names /proc/cpuinfo gives them.
inline constexpr absl::string_view kReportedCpuFeatures[] = {
    "avx2",     "avx512f",     "avx512_bf16", "amx_bf16",
    "amx_int8", "avx512_fp16", "avx512_vnni", "avx_vnni"};

struct CpuFeatures {
  std::string model;                  // "model name" of the first processor ("" if none)
  std::vector<std::string> features;  // those of kReportedCpuFeatures present, in that order

  bool Has(absl::string_view feature) const;
  // e.g. "Intel(R) Xeon(R) Processor; avx2 avx512f avx512_bf16" (or "...; none of ...").
  std::string Describe() const;
};

// Parses the text of /proc/cpuinfo (the first "flags" and "model name" lines). Text without
// them (another architecture, an empty file) gives no features.
CpuFeatures ParseCpuInfo(absl::string_view cpuinfo);

// Reads and parses `path`; a missing or unreadable file gives no features.
CpuFeatures ReadCpuFeatures(const std::string& path = "/proc/cpuinfo");

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_CPU_FEATURES_H_
