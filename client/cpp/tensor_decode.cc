// Decoding of dinov3.v1.Tensor payloads; see tensor_decode.h.
#include "client/cpp/tensor_decode.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"

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

uint64_t VectorBytes(v1::DType dtype, uint64_t dim) {
  switch (dtype) {
    case v1::FLOAT32:
      return 4 * dim;
    case v1::FLOAT16:
    case v1::BFLOAT16:
      return 2 * dim;
    case v1::INT8:
    case v1::UINT8:
      return dim;
    case v1::BINARY:
      return (dim + 7) / 8;
    default:
      return 0;
  }
}

bool IsCompact(v1::DType dtype) {
  return dtype == v1::INT8 || dtype == v1::UINT8 || dtype == v1::BINARY;
}

const char* DTypeName(v1::DType dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return "float32";
    case v1::FLOAT16:
      return "float16";
    case v1::BFLOAT16:
      return "bfloat16";
    case v1::INT8:
      return "int8";
    case v1::UINT8:
      return "uint8";
    case v1::BINARY:
      return "binary";
    default:
      return "unknown";
  }
}

absl::StatusOr<v1::DType> ParseDType(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "float32" || lower == "fp32") return v1::FLOAT32;
  if (lower == "float16" || lower == "fp16") return v1::FLOAT16;
  if (lower == "bfloat16" || lower == "bf16") return v1::BFLOAT16;
  if (lower == "int8") return v1::INT8;
  if (lower == "uint8") return v1::UINT8;
  if (lower == "binary") return v1::BINARY;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown dtype '", name, "' (expected float32, float16, bfloat16, int8, uint8 or binary)"));
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
  if (VectorBytes(tensor.dtype(), 1) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("unknown tensor dtype ", tensor.dtype()));
  }
  if (tensor.shape_size() == 0) return absl::InvalidArgumentError("tensor without a shape");
  absl::StatusOr<int64_t> count = NumElements(tensor.shape());
  if (!count.ok()) return count.status();
  const uint64_t dim = static_cast<uint64_t>(tensor.shape(tensor.shape_size() - 1));
  const uint64_t vectors = dim == 0 ? 0 : static_cast<uint64_t>(*count) / dim;
  uint64_t expected = 0;  // (a dim below 2^60 keeps VectorBytes itself from overflowing)
  if (dim > (uint64_t{1} << 60) ||
      __builtin_mul_overflow(vectors, VectorBytes(tensor.dtype(), dim), &expected)) {
    return absl::InvalidArgumentError("tensor shape overflows");
  }
  if (tensor.data().size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("tensor data has ", tensor.data().size(),
                                                   " bytes, its shape and dtype need ", expected));
  }
  const bool scaled = tensor.dtype() == v1::INT8 || tensor.dtype() == v1::UINT8;
  if (static_cast<uint64_t>(tensor.scales_size()) != (scaled ? vectors : 0)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor has ", tensor.scales_size(),
                                                   " scales, its shape and dtype need ",
                                                   scaled ? vectors : 0));
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

absl::StatusOr<std::vector<int>> CompactValues(const v1::Tensor& tensor) {
  if (absl::Status status = ValidateTensor(tensor); !status.ok()) return status;
  if (!IsCompact(tensor.dtype())) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", DTypeName(tensor.dtype()), " tensor is not compact"));
  }
  std::vector<int> values(tensor.data().size());
  for (size_t i = 0; i < values.size(); ++i) {
    const char byte = tensor.data()[i];
    values[i] = tensor.dtype() == v1::INT8 ? static_cast<int>(static_cast<int8_t>(byte))
                                           : static_cast<int>(static_cast<uint8_t>(byte));
  }
  return values;
}

absl::StatusOr<std::vector<float>> DecodeTensor(const v1::Tensor& tensor) {
  if (absl::Status status = ValidateTensor(tensor); !status.ok()) return status;
  const v1::DType dtype = tensor.dtype();
  if (!IsCompact(dtype)) {
    const size_t count = tensor.data().size() / VectorBytes(dtype, 1);
    return DecodeElements(dtype, tensor.data().data(), count);
  }
  ASSIGN_OR_RETURN(const std::vector<int> stored, CompactValues(tensor));
  const size_t dim = static_cast<size_t>(tensor.shape(tensor.shape_size() - 1));
  const size_t vectors = dim == 0 ? 0 : static_cast<size_t>(*NumElements(tensor.shape())) / dim;
  const size_t row_bytes = VectorBytes(dtype, dim);
  std::vector<float> out(vectors * dim);
  for (size_t v = 0; v < vectors; ++v) {
    for (size_t j = 0; j < dim; ++j) {
      float& value = out[v * dim + j];
      if (dtype == v1::BINARY) {
        value = static_cast<float>((stored[v * row_bytes + j / 8] >> (j % 8)) & 1);
      } else {
        const int q = stored[v * row_bytes + j] - (dtype == v1::UINT8 ? 128 : 0);
        value = static_cast<float>(q) * tensor.scales(static_cast<int>(v));
      }
    }
  }
  return out;
}

}  // namespace dinov3::client
