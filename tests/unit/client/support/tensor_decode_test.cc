// client/cpp/tensor_decode: every dtype's size rule, the compact dtypes' decoding (INT8, UINT8
// dequantised with their scales, BINARY bits least significant first) and shapes a hostile
// server could send to overflow the size check.
#include "client/cpp/tensor_decode.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace dinov3::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::Tensor Compact(v1::DType dtype, std::vector<int64_t> shape, std::string data,
                   std::vector<float> scales = {}) {
  v1::Tensor tensor;
  tensor.set_dtype(dtype);
  for (const int64_t dim : shape) tensor.add_shape(dim);
  tensor.set_data(std::move(data));
  for (const float scale : scales) tensor.add_scales(scale);
  return tensor;
}

TEST(TensorDecodeTest, Int8AndUint8DequantiseWithTheirVectorsScales) {
  const v1::Tensor int8 =
      Compact(v1::INT8, {2, 2}, std::string{'\x7f', '\x81', '\x02', '\x00'}, {0.5f, 2.0f});
  EXPECT_THAT(*DecodeTensor(int8), ElementsAre(63.5f, -63.5f, 4.0f, 0.0f));
  EXPECT_THAT(*CompactValues(int8), ElementsAre(127, -127, 2, 0));
  const v1::Tensor uint8 =
      Compact(v1::UINT8, {2, 2}, std::string{'\xff', '\x01', '\x82', '\x80'}, {0.5f, 2.0f});
  EXPECT_THAT(*DecodeTensor(uint8), ElementsAre(63.5f, -63.5f, 4.0f, 0.0f));
}

TEST(TensorDecodeTest, BinaryUnpacksLeastSignificantBitFirst) {
  // dim 10: two bytes per vector, the high 6 bits of the second unused.
  const v1::Tensor binary = Compact(v1::BINARY, {1, 10}, std::string{'\x05', '\x02'});
  EXPECT_THAT(*DecodeTensor(binary), ElementsAre(1, 0, 1, 0, 0, 0, 0, 0, 0, 1));
}

TEST(TensorDecodeTest, ScalesMustMatchTheVectors) {
  EXPECT_THAT(ValidateTensor(Compact(v1::INT8, {2, 2}, "abcd", {1.0f})).message(),
              HasSubstr("1 scales, its shape and dtype need 2"));
  EXPECT_THAT(ValidateTensor(Compact(v1::BINARY, {1, 8}, "a", {1.0f})).message(),
              HasSubstr("need 0"));
  EXPECT_THAT(ValidateTensor(Compact(v1::BINARY, {1, 9}, "a")).message(),
              HasSubstr("1 bytes, its shape and dtype need 2"));
}

TEST(TensorDecodeTest, ShapesWhoseSizeOverflowsAreRefused) {
  // 2^62 float32 values need 2^64 bytes: the size must not wrap to 0 and pass.
  EXPECT_THAT(ValidateTensor(Compact(v1::FLOAT32, {int64_t{1} << 62}, "")).message(),
              HasSubstr("overflows"));
  EXPECT_THAT(ValidateTensor(Compact(v1::FLOAT32, {int64_t{1} << 61, 2}, "")).message(),
              HasSubstr("overflows"));
  EXPECT_FALSE(DecodeTensor(Compact(v1::FLOAT16, {int64_t{1} << 62, 2}, "")).ok());
}

}  // namespace
}  // namespace dinov3::client
