// Float32 -> FP16 / BF16 equals LibTorch's c10::Half / c10::BFloat16 conversion (what the engine
// uses for 16-bit outputs) bit for bit, over a sweep of float bit patterns and the edge cases.
#include "server/kserve/float_convert.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace dinov3::kserve {
namespace {

float FromBits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

TEST(FloatConvertTest, KnownValues) {
  EXPECT_EQ(Float32ToFloat16Bits(1.0f), 0x3C00);
  EXPECT_EQ(Float32ToFloat16Bits(-2.0f), 0xC000);
  EXPECT_EQ(Float32ToFloat16Bits(65504.0f), 0x7BFF);
  EXPECT_EQ(Float32ToFloat16Bits(65520.0f), 0x7C00);               // rounds up to infinity
  EXPECT_EQ(Float32ToFloat16Bits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(Float32ToFloat16Bits(std::ldexp(1.0f, -25)), 0x0000);  // tie to even
  EXPECT_EQ(Float32ToFloat16Bits(std::ldexp(3.0f, -25)), 0x0002);  // tie to even
  EXPECT_EQ(Float32ToBFloat16Bits(1.0f), 0x3F80);
  EXPECT_EQ(Float32ToBFloat16Bits(FromBits(0x3F808000)), 0x3F80);  // tie to even: down
  EXPECT_EQ(Float32ToBFloat16Bits(FromBits(0x3F818000)), 0x3F82);  // tie to even: up
  EXPECT_EQ(Float32ToBFloat16Bits(std::numeric_limits<float>::quiet_NaN()), 0x7FC0);
}

TEST(FloatConvertTest, MatchesC10OverASweepOfBitPatterns) {
  int checked = 0;
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFu; bits += 251) {
    const float f = FromBits(static_cast<uint32_t>(bits));
    if (std::isnan(f)) continue;  // NaN payloads aside, both give a quiet NaN
    ASSERT_EQ(Float32ToFloat16Bits(f), c10::Half(f).x) << std::hex << bits;
    ASSERT_EQ(Float32ToBFloat16Bits(f), c10::BFloat16(f).x) << std::hex << bits;
    ++checked;
  }
  EXPECT_GT(checked, 10'000'000);
}

TEST(FloatConvertTest, AppendConvertedIsLittleEndian) {
  const std::vector<float> values = {1.0f, -2.0f};
  const std::string float32(reinterpret_cast<const char*>(values.data()), 8);
  std::string out = "x";
  AppendConverted(float32, DType::kFloat16, &out);
  EXPECT_EQ(out, std::string("x\x00\x3C\x00\xC0", 5));
  out.clear();
  AppendConverted(float32, DType::kBFloat16, &out);
  EXPECT_EQ(out, std::string("\x80\x3F\x00\xC0", 4));
  out.clear();
  AppendConverted(float32, DType::kFloat32, &out);
  EXPECT_EQ(out, float32);
}

}  // namespace
}  // namespace dinov3::kserve
