#include "client/bench/oip_tensors.h"

#include <cstdint>
#include <limits>

namespace dinov3::bench {
namespace {

const char* OutputTensorName(v1::Output output) {
  switch (output) {
    case v1::CLS:
      return "CLS";
    case v1::POOLED:
      return "POOLED";
    case v1::PATCH_TOKENS:
      return "PATCH_TOKENS";
    case v1::REGISTERS:
      return "REGISTERS";
    default:
      return "UNSPECIFIED";
  }
}

const char* DatatypeOf(v1::DType dtype) {
  switch (dtype) {
    case v1::FLOAT16:
      return "FP16";
    case v1::BFLOAT16:
      return "BF16";
    default:
      return "FP32";
  }
}

}  // namespace

void AppendBytesElement(absl::string_view element, std::string& raw) {
  const uint32_t length = static_cast<uint32_t>(element.size());
  for (int shift = 0; shift < 32; shift += 8) raw.push_back(static_cast<char>(length >> shift));
  raw.append(element.data(), element.size());
}

absl::StatusOr<OipInput> MakeOipInput(const v1::Image& image, int copies) {
  if (copies < 1) return absl::InvalidArgumentError("a request needs at least one image");
  OipInput input;
  if (image.has_raw()) {
    const v1::RawImage& pixels = image.raw();
    if (pixels.format() != v1::RGB8) {
      return absl::InvalidArgumentError("the PIXELS input takes RGB8 pixels only");
    }
    input.name = "PIXELS";
    input.datatype = "UINT8";
    input.shape = {copies, pixels.height(), pixels.width(), 3};
    input.raw.reserve(pixels.data().size() * copies);
    for (int i = 0; i < copies; ++i) input.raw.append(pixels.data());
    return input;
  }
  if (image.encoded().size() > std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError("an image file over 4 GiB cannot be a BYTES element");
  }
  input.name = "IMAGE";
  input.datatype = "BYTES";
  input.shape = {copies};
  input.raw.reserve((4 + image.encoded().size()) * copies);
  for (int i = 0; i < copies; ++i) AppendBytesElement(image.encoded(), input.raw);
  return input;
}

std::vector<OipOutput> OipOutputs(const RequestSpec& spec) {
  std::vector<v1::Output> outputs = spec.outputs;
  if (outputs.empty()) outputs = {v1::CLS, v1::POOLED};
  std::vector<OipOutput> asked;
  for (const v1::Output output : outputs) {
    asked.push_back({OutputTensorName(output), DatatypeOf(spec.dtype)});
  }
  return asked;
}

size_t OipElementSize(absl::string_view datatype) {
  if (datatype == "FP32") return 4;
  if (datatype == "FP16" || datatype == "BF16") return 2;
  if (datatype == "UINT8") return 1;
  return 0;
}

bool OipOutputMatches(const OipOutput& asked, int images, absl::string_view datatype,
                      absl::Span<const int64_t> shape, size_t data_bytes) {
  if (datatype != asked.datatype || shape.empty() || shape[0] != images) return false;
  uint64_t elements = 1;
  for (const int64_t dimension : shape) {
    if (dimension <= 0 || dimension > (int64_t{1} << 32)) return false;
    elements *= static_cast<uint64_t>(dimension);
    if (elements > (uint64_t{1} << 40)) return false;
  }
  return elements * OipElementSize(datatype) == data_bytes;
}

}  // namespace dinov3::bench
