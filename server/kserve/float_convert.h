// Float32 to the 16-bit output dtypes, bit for bit as the engine converts them (LibTorch's
// c10::Half and c10::BFloat16: round to nearest, ties to even; a NaN becomes the canonical
// quiet NaN), so an output converted here equals the native API's output in that dtype. Used
// when the outputs of one KServe request ask for different dtypes: the request runs in float32
// and the 16-bit outputs are converted from it.
// Pure functions on little-endian byte strings; thread-safe.
#ifndef DINOV3_SERVER_KSERVE_FLOAT_CONVERT_H_
#define DINOV3_SERVER_KSERVE_FLOAT_CONVERT_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/common/types.h"

namespace dinov3::kserve {

uint16_t Float32ToFloat16Bits(float value);
uint16_t Float32ToBFloat16Bits(float value);

// `float32` (4-byte little-endian values) in `dtype`, appended to `out`.
void AppendConverted(absl::string_view float32, DType dtype, std::string* out);

}  // namespace dinov3::kserve

#endif  // DINOV3_SERVER_KSERVE_FLOAT_CONVERT_H_
