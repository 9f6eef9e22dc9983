#include "server/engine/output_encoder.h"

#include <cstring>
#include <utility>

namespace dinov3::engine {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire format is little-endian");

// The wire scalar type of a float dtype.
torch::ScalarType ScalarTypeOf(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return torch::kFloat16;
    case DType::kBFloat16:
      return torch::kBFloat16;
    default:
      break;
  }
  return torch::kFloat32;
}

// `host` (contiguous, CPU, any dtype) as the data of a TensorData of `dtype` and `shape`.
TensorData CopyOut(const torch::Tensor& host, DType dtype, torch::IntArrayRef shape) {
  TensorData data;
  data.dtype = dtype;
  data.shape.assign(shape.begin(), shape.end());
  data.data.resize(host.numel() * host.element_size());
  std::memcpy(data.data.data(), host.data_ptr(), data.data.size());
  return data;
}

// kInt8 / kUint8: symmetric per-vector quantisation of `raw` [V, D] float32 (see DType):
// q = round(x / scale), ties to even, scale = max|x| / 127 or 1 for a zero vector; NaN counts
// as 0 and +-inf as the largest finite float (no cast of a NaN to an integer).
TensorData Quantize(const torch::Tensor& raw, DType dtype, torch::IntArrayRef shape) {
  const torch::Tensor vectors = torch::nan_to_num(raw);  // NaN 0, +-inf the largest float
  const torch::Tensor max_abs = vectors.abs().amax(/*dim=*/-1, /*keepdim=*/true);
  const torch::Tensor scales =
      torch::where(max_abs > 0, max_abs / 127.0, torch::ones_like(max_abs));
  torch::Tensor q = (vectors / scales).round_().clamp_(-127, 127);
  q = dtype == DType::kInt8 ? q.to(torch::kInt8) : q.add_(128).to(torch::kUInt8);
  TensorData data = CopyOut(q.contiguous(), dtype, shape);
  const torch::Tensor flat = scales.reshape(-1).contiguous();
  data.scales.assign(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
  return data;
}

// kBinary: the sign bits of `vectors` [V, D], 1 where x > 0, packed 8 per byte, least
// significant bit first; each vector padded with zero bits to whole bytes.
TensorData PackSigns(const torch::Tensor& vectors, torch::IntArrayRef shape) {
  const int64_t dim = vectors.size(1);
  const int64_t padded = (dim + 7) / 8 * 8;
  torch::Tensor bits = vectors.gt(0).to(torch::kUInt8);
  if (padded != dim) bits = torch::constant_pad_nd(bits, {0, padded - dim});
  const torch::Tensor weights =
      torch::tensor({1, 2, 4, 8, 16, 32, 64, 128}, torch::dtype(torch::kUInt8));
  const torch::Tensor packed =
      bits.view({vectors.size(0), padded / 8, 8}).mul(weights).sum(-1, false, torch::kUInt8);
  return CopyOut(packed.contiguous(), DType::kBinary, shape);
}

torch::Tensor L2Normalize(const torch::Tensor& x) {
  return x / x.norm(2, /*dim=*/-1, /*keepdim=*/true).clamp_min(1e-12);
}

}  // namespace

TensorData ToTensorData(const torch::Tensor& tensor, DType dtype) {
  if (dtype == DType::kFloat32 || dtype == DType::kFloat16 || dtype == DType::kBFloat16) {
    const torch::Tensor host =
        tensor.to(torch::kCPU, ScalarTypeOf(dtype), /*non_blocking=*/false, /*copy=*/false)
            .contiguous();
    return CopyOut(host, dtype, host.sizes());
  }
  const torch::Tensor vectors =
      tensor.to(torch::kCPU, torch::kFloat32).contiguous().view({-1, tensor.size(-1)});
  return dtype == DType::kBinary ? PackSigns(vectors, tensor.sizes())
                                 : Quantize(vectors, dtype, tensor.sizes());
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

LayerResult EncodeLayer(int layer, const ImageOutputs& outputs, const EncodeOptions& options) {
  EmbeddingResult encoded = EncodeOutputs(outputs, options, 0, 0);
  return LayerResult{layer, std::move(encoded.cls), std::move(encoded.pooled),
                     std::move(encoded.registers), std::move(encoded.patch_tokens)};
}

}  // namespace dinov3::engine
