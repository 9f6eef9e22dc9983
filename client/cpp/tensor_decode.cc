// Decoding of dinov3.v1.Tensor payloads; see tensor_decode.h.
#include "client/cpp/tensor_decode.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace dinov3::client {

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  uint32_t out;
  if (exponent == 0x1f) {  // infinity or NaN
    out = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {  // normal
    out = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {  // signed zero
    out = sign;
  } else {  // subnormal: value = mantissa * 2^-24, exact in float
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  float value;
  std::memcpy(&value, &out, sizeof(value));
  return value;
}

float BFloat16ToFloat(uint16_t bits) {
  const uint32_t out = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &out, sizeof(value));
  return value;
}

size_t DTypeSize(v1::DType dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return 4;
    case v1::FLOAT16:
    case v1::BFLOAT16:
      return 2;
    default:
      return 0;
  }
}

const char* DTypeName(v1::DType dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return "float32";
    case v1::FLOAT16:
      return "float16";
    case v1::BFLOAT16:
      return "bfloat16";
    default:
      return "unknown";
  }
}

absl::StatusOr<v1::DType> ParseDType(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "float32" || lower == "fp32") return v1::FLOAT32;
  if (lower == "float16" || lower == "fp16") return v1::FLOAT16;
  if (lower == "bfloat16" || lower == "bf16") return v1::BFLOAT16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (expected float32, float16 or bfloat16)"));
}

absl::StatusOr<int64_t> NumElements(const google::protobuf::RepeatedField<int64_t>& shape) {
  int64_t count = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("negative dimension ", dim));
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / dim) {
      return absl::InvalidArgumentError("tensor shape overflows");
    }
    count *= dim;
  }
  return count;
}

absl::Status ValidateTensor(const v1::Tensor& tensor) {
  const size_t element_size = DTypeSize(tensor.dtype());
  if (element_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("unknown tensor dtype ", tensor.dtype()));
  }
  absl::StatusOr<int64_t> count = NumElements(tensor.shape());
  if (!count.ok()) return count.status();
  const uint64_t expected = static_cast<uint64_t>(*count) * element_size;
  if (tensor.data().size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("tensor data has ", tensor.data().size(),
                                                   " bytes, its shape and dtype need ", expected));
  }
  return absl::OkStatus();
}

std::vector<float> DecodeElements(v1::DType dtype, const char* data, size_t count) {
  std::vector<float> out(count);
  if (dtype == v1::FLOAT32) {
    std::memcpy(out.data(), data, count * sizeof(float));
    return out;
  }
  for (size_t i = 0; i < count; ++i) {
    uint16_t bits;
    std::memcpy(&bits, data + 2 * i, sizeof(bits));
    out[i] = dtype == v1::FLOAT16 ? HalfToFloat(bits) : BFloat16ToFloat(bits);
  }
  return out;
}

absl::StatusOr<std::vector<float>> DecodeTensor(const v1::Tensor& tensor) {
  if (absl::Status status = ValidateTensor(tensor); !status.ok()) return status;
  const size_t count = tensor.data().size() / DTypeSize(tensor.dtype());
  return DecodeElements(tensor.dtype(), tensor.data().data(), count);
}

}  // namespace dinov3::client
