#include "server/engine/output_encoder.h"

#include <cstring>

namespace dinov3::engine {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire format is little-endian");

torch::ScalarType ScalarTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return torch::kFloat16;
    case DType::kBFloat16:
      return torch::kBFloat16;
    case DType::kFloat32:
      break;
  }
  return torch::kFloat32;
}

torch::Tensor L2Normalize(const torch::Tensor& x) {
  return x / x.norm(2, /*dim=*/-1, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace

TensorData ToTensorData(const torch::Tensor& tensor, DType dtype) {
  const torch::Tensor host =
      tensor.to(torch::kCPU, ScalarTypeOf(dtype), /*non_blocking=*/false, /*copy=*/false)
          .contiguous();
  TensorData data;
  data.dtype = dtype;
  data.shape.assign(host.sizes().begin(), host.sizes().end());
  data.data.resize(host.numel() * host.element_size());
  std::memcpy(data.data.data(), host.data_ptr(), data.data.size());
  return data;
}

EmbeddingResult EncodeOutputs(const ImageOutputs& outputs, const EncodeOptions& options,
                              int grid_height, int grid_width) {
  EmbeddingResult result;
  result.grid_height = grid_height;
  result.grid_width = grid_width;
  auto finish = [&](const torch::Tensor& x) {
    torch::Tensor f = x.to(torch::kFloat32);
    return ToTensorData(options.l2_normalize ? L2Normalize(f) : f, options.dtype);
  };
  if (options.outputs.cls) result.cls = finish(outputs.cls);
  if (options.outputs.pooled) {
    result.pooled = finish(outputs.patch_tokens.to(torch::kFloat32).mean(0));
  }
  if (options.outputs.patch_tokens) result.patch_tokens = finish(outputs.patch_tokens);
  if (options.outputs.registers) {
    result.registers = ToTensorData(outputs.registers.to(torch::kFloat32), options.dtype);
  }
  return result;
}

}  // namespace dinov3::engine
