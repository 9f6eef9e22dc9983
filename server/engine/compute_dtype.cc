#include "server/engine/compute_dtype.h"

namespace dinov3::engine {

std::string ResolveComputeDtype(absl::string_view requested, absl::string_view export_dtype,
                                bool cuda, const CpuFeatures& cpu) {
  if (requested == "export") return "";
  if (requested != "auto") return std::string(requested);
  if (export_dtype == "int8") return "";
  if (cuda) return "float16";
  return cpu.Has("amx_bf16") ? "bfloat16" : "float32";
}

}  // namespace dinov3::engine
