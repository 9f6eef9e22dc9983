// model.compute_dtype: the dtype a model instance computes in, separate from the dtype of the
// export's weights and from the dtype of the tensors sent to clients.
//
//   "export"   the export's own dtype (the default: nobody's vectors change silently)
//   "float32", "bfloat16", "float16"   that dtype on every device
//   "auto"     float16 on CUDA devices; bfloat16 on a CPU with AMX-BF16; float32 on other
//              CPUs. AVX512_BF16 alone does not count: on such a Xeon, bfloat16 matrix products
//              ran at 0.6x and the vitb16 forward at 0.65x of float32 (BENCHMARKS.md). An int8
//              export computes as exported: choosing it was already the CPU's fast path.
//
// Pure and torch-free; the CPU is a parameter so tests can give any CPU.
#ifndef DINOV3_SERVER_ENGINE_COMPUTE_DTYPE_H_
#define DINOV3_SERVER_ENGINE_COMPUTE_DTYPE_H_

#include <string>

#include "absl/strings/string_view.h"
#include "server/common/cpu_features.h"

namespace dinov3::engine {

// The dtype an instance on a CUDA device (`cuda`) or on this CPU computes in, as
// ModelRuntime::Load takes it: "float32", "bfloat16" or "float16", or "" for the export's own.
// `requested` is a value above (anything else is returned as is: the runtime rejects it);
// `export_dtype` is the archive's (ModelMetadata::dtype).
std::string ResolveComputeDtype(absl::string_view requested, absl::string_view export_dtype,
                                bool cuda, const CpuFeatures& cpu);

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_COMPUTE_DTYPE_H_
