#include "server/engine/image_tensor.h"

namespace dinov3::engine {
namespace {

// [H, W, 3] uint8 pixels on a device -> the resized and cropped float image there,
// [3, out_h, out_w] (a view into the resize's output).
torch::Tensor ResizedCrop(const torch::Tensor& pixels, const ResizePlan& plan) {
  namespace F = torch::nn::functional;
  torch::Tensor x = pixels.permute({2, 0, 1}).unsqueeze(0).to(
      torch::kFloat32, /*non_blocking=*/false, /*copy=*/false, torch::MemoryFormat::Contiguous);
  x.mul_(1.0f / 255.0f);
  F::InterpolateFuncOptions resize;
  resize.size(std::vector<int64_t>{plan.resize_height, plan.resize_width})
      .align_corners(false)
      .antialias(true);
  if (plan.interpolation == Interpolation::kBicubic) {
    resize.mode(torch::kBicubic);
  } else {
    resize.mode(torch::kBilinear);
  }
  x = F::interpolate(x, resize);  // the full-size float image is released here
  return x.index({0, torch::indexing::Slice(),
                  torch::indexing::Slice(plan.crop_top, plan.crop_top + plan.out_height),
                  torch::indexing::Slice(plan.crop_left, plan.crop_left + plan.out_width)});
}

// [H, W, 3] view of the image's pixels. from_blob does not own them: every user copies them (to
// float, or to the device) before `image` can go away.
torch::Tensor PixelsView(const RgbImage& image) {
  return torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, 3},
                          torch::kUInt8);
}

torch::Tensor Channels(const std::array<float, 3>& values) {
  return torch::tensor({values[0], values[1], values[2]}).view({3, 1, 1});
}

}  // namespace

torch::Tensor ImageToModelInput(const RgbImage& image, const ResizePlan& plan,
                                const Normalization& norm, const torch::Device& device) {
  torch::Tensor pixels = PixelsView(image);
  if (device.is_cuda()) {
    // Through pinned memory, so the upload is asynchronous on the current stream (the caching
    // host allocator keeps the pinned block until the copy is done).
    pixels = pixels.pin_memory().to(device, /*non_blocking=*/true);
  }
  const torch::Tensor x = ResizedCrop(pixels, plan);
  // non_blocking: a synchronous copy would wait for the stream after every image.
  const torch::Tensor mean = Channels(norm.mean).to(device, /*non_blocking=*/true);
  const torch::Tensor std = Channels(norm.std).to(device, /*non_blocking=*/true);
  return ((x - mean) / std).contiguous();
}

void WriteModelInput(const RgbImage& image, const ResizePlan& plan, const Normalization& norm,
                     float* out) {
  const torch::Tensor x = ResizedCrop(PixelsView(image), plan);
  torch::Tensor result = torch::from_blob(out, {3, plan.out_height, plan.out_width});
  torch::sub_out(result, x, Channels(norm.mean));
  result.div_(Channels(norm.std));
}

}  // namespace dinov3::engine
