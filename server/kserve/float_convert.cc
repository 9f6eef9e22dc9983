#include "server/kserve/float_convert.h"

#include <cmath>
#include <cstring>

namespace dinov3::kserve {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire format is little-endian");

uint32_t BitsOf(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

float FloatOf(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

void AppendUint16(uint16_t value, std::string* out) {
  out->push_back(static_cast<char>(value & 0xff));
  out->push_back(static_cast<char>(value >> 8));
}

}  // namespace

// The FP16 library's fp16_ieee_from_fp32_value, which c10::Half uses: the float arithmetic
// does the rounding (to nearest even) of normal and subnormal results alike.
uint16_t Float32ToFloat16Bits(float value) {
  const float scale_to_inf = FloatOf(UINT32_C(0x77800000));   // 2^112
  const float scale_to_zero = FloatOf(UINT32_C(0x08800000));  // 2^-110
  float base = (std::fabs(value) * scale_to_inf) * scale_to_zero;
  const uint32_t w = BitsOf(value);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & UINT32_C(0x80000000);
  uint32_t bias = shl1_w & UINT32_C(0xFF000000);
  if (bias < UINT32_C(0x71000000)) bias = UINT32_C(0x71000000);
  base = FloatOf((bias >> 1) + UINT32_C(0x07800000)) + base;
  const uint32_t bits = BitsOf(base);
  const uint32_t exp_bits = (bits >> 13) & UINT32_C(0x00007C00);
  const uint32_t mantissa_bits = bits & UINT32_C(0x00000FFF);
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) |
                               (shl1_w > UINT32_C(0xFF000000) ? UINT32_C(0x7E00) : nonsign));
}

// c10::detail::round_to_nearest_even.
uint16_t Float32ToBFloat16Bits(float value) {
  if (std::isnan(value)) return UINT16_C(0x7FC0);
  const uint32_t bits = BitsOf(value);
  const uint32_t rounding_bias = ((bits >> 16) & 1) + UINT32_C(0x7FFF);
  return static_cast<uint16_t>((bits + rounding_bias) >> 16);
}

void AppendConverted(absl::string_view float32, DType dtype, std::string* out) {
  const size_t count = float32.size() / sizeof(float);
  if (dtype == DType::kFloat32) {
    out->append(float32.data(), count * sizeof(float));
    return;
  }
  out->reserve(out->size() + 2 * count);
  for (size_t i = 0; i < count; ++i) {
    float value;
    std::memcpy(&value, float32.data() + i * sizeof(float), sizeof(value));
    AppendUint16(
        dtype == DType::kFloat16 ? Float32ToFloat16Bits(value) : Float32ToBFloat16Bits(value), out);
  }
}

}  // namespace dinov3::kserve
