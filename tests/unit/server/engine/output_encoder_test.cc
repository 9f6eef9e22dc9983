// The wire encodings of server/engine/output_encoder: the compact dtypes (INT8, UINT8, BINARY)
// against their definition in server/common/types.h, worked by hand and checked on random
// vectors; the float dtypes keep their bytes.
#include "server/engine/output_encoder.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace dinov3::engine {
namespace {

torch::Tensor Random(std::vector<int64_t> shape, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn(shape);
}

std::vector<int> Stored(const TensorData& data) {
  std::vector<int> values;
  for (const char byte : data.data) {
    values.push_back(data.dtype == DType::kInt8 ? static_cast<int8_t>(byte)
                                                : static_cast<uint8_t>(byte));
  }
  return values;
}

TEST(OutputEncoderTest, Int8IsSymmetricPerVectorWithTheScaleOfTheLargestValue) {
  // max|x| = 2: scale 2/127; 1 -> 63.5 rounds to even 64, 0.5 -> 31.75 -> 32.
  const torch::Tensor x = torch::tensor({1.0f, -2.0f, 0.5f, 0.0f});
  const TensorData data = ToTensorData(x, DType::kInt8);
  EXPECT_EQ(data.shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(Stored(data), (std::vector<int>{64, -127, 32, 0}));
  ASSERT_EQ(data.scales.size(), 1u);
  EXPECT_FLOAT_EQ(data.scales[0], 2.0f / 127.0f);
}

TEST(OutputEncoderTest, Uint8IsInt8PlusOffset128) {
  const torch::Tensor x = Random({6, 33}, 3);
  const TensorData int8 = ToTensorData(x, DType::kInt8);
  const TensorData uint8 = ToTensorData(x, DType::kUint8);
  ASSERT_EQ(int8.data.size(), uint8.data.size());
  const std::vector<int> q = Stored(int8);
  const std::vector<int> u = Stored(uint8);
  for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(u[i], q[i] + 128) << i;
  EXPECT_EQ(int8.scales, uint8.scales);
}

TEST(OutputEncoderTest, Int8DequantisesWithinHalfAStepAndUsesTheFullRange) {
  const torch::Tensor x = Random({5, 37}, 7);
  const TensorData data = ToTensorData(x, DType::kInt8);
  EXPECT_EQ(data.shape, (std::vector<int64_t>{5, 37}));
  ASSERT_EQ(data.data.size(), 5u * 37u);
  ASSERT_EQ(data.scales.size(), 5u);
  const std::vector<int> q = Stored(data);
  const auto values = x.accessor<float, 2>();
  for (int v = 0; v < 5; ++v) {
    int max_abs = 0;
    for (int j = 0; j < 37; ++j) {
      const int stored = q[v * 37 + j];
      max_abs = std::max(max_abs, std::abs(stored));
      EXPECT_LE(std::abs(stored * data.scales[v] - values[v][j]), 0.5f * data.scales[v] * 1.0001f);
    }
    EXPECT_EQ(max_abs, 127) << "vector " << v;
  }
}

TEST(OutputEncoderTest, AZeroVectorHasScaleOneAndZeros) {
  const TensorData data = ToTensorData(torch::zeros({2, 8}), DType::kInt8);
  EXPECT_EQ(Stored(data), std::vector<int>(16, 0));
  EXPECT_EQ(data.scales, (std::vector<float>{1.0f, 1.0f}));
}

TEST(OutputEncoderTest, BinaryPacksSignBitsLeastSignificantFirst) {
  // Vector 0: bits 1,0,1,0,0,0,0,1 | 1 -> bytes 0b10000101, 0b00000001. Vector 1: all <= 0.
  const torch::Tensor x =
      torch::tensor({{0.3f, -1.0f, 2.0f, 0.0f, -0.1f, -0.2f, -0.3f, 5.0f, 1.0f},
                     {0.0f, -1.0f, -2.0f, 0.0f, -1.0f, -1.0f, -1.0f, -1.0f, -9.0f}});
  const TensorData data = ToTensorData(x, DType::kBinary);
  EXPECT_EQ(data.shape, (std::vector<int64_t>{2, 9}));  // the logical shape
  EXPECT_EQ(Stored(data), (std::vector<int>{0x85, 0x01, 0x00, 0x00}));
  EXPECT_TRUE(data.scales.empty());
}

TEST(OutputEncoderTest, BinaryMatchesTheSignsOfRandomVectors) {
  const torch::Tensor x = Random({4, 45}, 11);
  const TensorData data = ToTensorData(x, DType::kBinary);
  ASSERT_EQ(data.data.size(), 4u * 6u);  // ceil(45 / 8) bytes per vector
  const std::vector<int> bytes = Stored(data);
  const auto values = x.accessor<float, 2>();
  for (int v = 0; v < 4; ++v) {
    for (int j = 0; j < 48; ++j) {
      const int bit = (bytes[v * 6 + j / 8] >> (j % 8)) & 1;
      ASSERT_EQ(bit, j < 45 && values[v][j] > 0 ? 1 : 0) << v << "," << j;
    }
  }
}

TEST(OutputEncoderTest, FloatDtypesKeepTheirBytesAndHaveNoScales) {
  const torch::Tensor x = Random({3, 4}, 5);
  const TensorData data = ToTensorData(x, DType::kFloat32);
  ASSERT_EQ(data.data.size(), 12u * sizeof(float));
  EXPECT_EQ(std::memcmp(data.data.data(), x.data_ptr<float>(), data.data.size()), 0);
  EXPECT_TRUE(data.scales.empty());
  EXPECT_EQ(ToTensorData(x, DType::kBFloat16).data.size(), 12u * 2u);
}

TEST(OutputEncoderTest, EncodeOutputsQuantisesEveryOutputAfterNormalising) {
  const torch::Tensor tokens = Random({1 + 4 + 6, 16}, 2);
  const ImageOutputs outputs{tokens[0], tokens.slice(0, 1, 5), tokens.slice(0, 5)};
  EncodeOptions options;
  options.outputs = {.cls = true, .pooled = true, .patch_tokens = true, .registers = true};
  options.dtype = DType::kInt8;
  options.l2_normalize = true;
  const EmbeddingResult result = EncodeOutputs(outputs, options, 2, 3);
  ASSERT_TRUE(result.cls && result.pooled && result.patch_tokens && result.registers);
  EXPECT_EQ(result.cls->scales.size(), 1u);
  EXPECT_EQ(result.pooled->scales.size(), 1u);
  EXPECT_EQ(result.patch_tokens->scales.size(), 6u);
  EXPECT_EQ(result.registers->scales.size(), 4u);
  // The normalised CLS has norm 1: its dequantised values too, within the rounding.
  double norm = 0;
  for (const int q : Stored(*result.cls)) norm += std::pow(q * result.cls->scales[0], 2);
  EXPECT_NEAR(std::sqrt(norm), 1.0, 0.01);
}

}  // namespace
}  // namespace dinov3::engine
