// Decoding of dinov3.v1.Tensor payloads (row-major, little-endian float32/float16/bfloat16)
// into host floats, and the half-precision conversions behind it.
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

// Bytes per element of `dtype`, or 0 for a value outside the enum.
size_t DTypeSize(v1::DType dtype);

// Lower-case name used on the command line and in .npy files: "float32", "float16",
// "bfloat16"; "unknown" otherwise.
const char* DTypeName(v1::DType dtype);

// Parses "float32" | "float16" | "bfloat16" (also "fp32", "fp16", "bf16").
absl::StatusOr<v1::DType> ParseDType(absl::string_view name);

// Product of the dimensions; InvalidArgument for a negative dimension or on overflow.
absl::StatusOr<int64_t> NumElements(const google::protobuf::RepeatedField<int64_t>& shape);

// Checks that `tensor.data` holds exactly NumElements(shape) elements of `tensor.dtype`.
absl::Status ValidateTensor(const v1::Tensor& tensor);

// Decodes `count` elements of `dtype` starting at `data` into floats.
std::vector<float> DecodeElements(v1::DType dtype, const char* data, size_t count);

// Validates `tensor` and decodes all of its elements, row-major.
absl::StatusOr<std::vector<float>> DecodeTensor(const v1::Tensor& tensor);

}  // namespace dinov3::client

#endif  // DINOV3_CLIENT_CPP_TENSOR_DECODE_H_
