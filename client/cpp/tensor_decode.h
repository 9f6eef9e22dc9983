// Decoding of dinov3.v1.Tensor payloads (row-major, little-endian float32/float16/bfloat16, and
// the compact per-vector INT8/UINT8/BINARY encodings of dinov3.v1.DType) into host floats, and
// the half-precision conversions behind it.
//
// Pure functions without state: safe to call from any thread. Errors are InvalidArgument and
// say what is inconsistent (unknown dtype, negative dimension, byte size that does not match
// the shape). Assumes a little-endian host, like the rest of the project.
#ifndef DINOV3_CLIENT_CPP_TENSOR_DECODE_H_
#define DINOV3_CLIENT_CPP_TENSOR_DECODE_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dinov3/v1/embedding.pb.h"

namespace dinov3::client {

// IEEE 754 binary16 -> float (exact; subnormals, infinities and NaN included).
float HalfToFloat(uint16_t bits);
// bfloat16 (the upper half of a float32) -> float (exact).
float BFloat16ToFloat(uint16_t bits);

// Wire bytes of one vector (the last dimension) of `dim` values: dim * 4 or dim * 2 for the
// float dtypes, dim for INT8 and UINT8, ceil(dim / 8) for BINARY; 0 for a value outside the
// enum.
uint64_t VectorBytes(v1::DType dtype, uint64_t dim);

// Lower-case name used on the command line and in .npy files: "float32", "float16",
// "bfloat16", "int8", "uint8", "binary"; "unknown" otherwise.
const char* DTypeName(v1::DType dtype);

// Parses a DTypeName (also "fp32", "fp16", "bf16").
absl::StatusOr<v1::DType> ParseDType(absl::string_view name);

// Product of the dimensions; InvalidArgument for a negative dimension or on overflow.
absl::StatusOr<int64_t> NumElements(const google::protobuf::RepeatedField<int64_t>& shape);

// Checks that `tensor.data` holds exactly its vectors (product of all but the last dimension)
// of VectorBytes each, and that INT8/UINT8 tensors carry one scale per vector (others none).
absl::Status ValidateTensor(const v1::Tensor& tensor);

// Decodes `count` elements of a float `dtype` starting at `data` into floats.
std::vector<float> DecodeElements(v1::DType dtype, const char* data, size_t count);

// Validates `tensor` and decodes all of its elements, row-major: the float dtypes exactly,
// INT8/UINT8 dequantised (q * scale, (u - 128) * scale), BINARY as each element's bit (1 or 0).
absl::StatusOr<std::vector<float>> DecodeTensor(const v1::Tensor& tensor);

// The stored values of a compact tensor as they travel (INT8: -127..127, UINT8: 0..255,
// BINARY: the packed bytes 0..255, ceil(dim / 8) per vector), row-major. Validates first.
absl::StatusOr<std::vector<int>> CompactValues(const v1::Tensor& tensor);

// True for INT8, UINT8 and BINARY.
bool IsCompact(v1::DType dtype);

}  // namespace dinov3::client

#endif  // DINOV3_CLIENT_CPP_TENSOR_DECODE_H_
