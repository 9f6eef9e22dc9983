#include "server/engine/compute_dtype.h"

namespace dinov3::engine {

std::string ResolveComputeDtype(absl::string_view requested, bool cuda, const CpuFeatures& cpu) {
  if (requested == "export") return "";
  if (requested != "auto") return std::string(requested);
  if (cuda) return "float16";
  return cpu.Has("amx_bf16") ? "bfloat16" : "float32";
}

}  // namespace dinov3::engine
