#include "server/engine/image_tensor.h"

#include <algorithm>
#include <vector>

namespace dinov3::engine {
namespace {

namespace F = torch::nn::functional;

// Rows converted to float at a time by the width pass on a CPU: a few MB, in cache.
constexpr int64_t kStripRows = 32;

// [h, W, 3] uint8 -> [1, 3, h, W] contiguous float * (1/255).
torch::Tensor ToUnitFloat(const torch::Tensor& pixels) {
  torch::Tensor x = pixels.permute({2, 0, 1}).unsqueeze(0).to(
      torch::kFloat32, /*non_blocking=*/false, /*copy=*/false, torch::MemoryFormat::Contiguous);
  return x.mul_(1.0f / 255.0f);
}

torch::Tensor Resize(const torch::Tensor& x, int64_t height, int64_t width,
                     Interpolation interpolation) {
  F::InterpolateFuncOptions resize;
  resize.size(std::vector<int64_t>{height, width}).align_corners(false).antialias(true);
  if (interpolation == Interpolation::kBicubic) {
    resize.mode(torch::kBicubic);
  } else {
    resize.mode(torch::kBilinear);
  }
  return F::interpolate(x, resize);
}

// The resize's width pass, kStripRows rows at a time: ATen's antialiased resize is separable and
// resizes the width first, each row on its own, so strips give the bits of the whole image while
// only one strip is ever float at full width (instead of 12 bytes per pixel of the image).
torch::Tensor WidthPassInStrips(const torch::Tensor& pixels, int64_t width,
                                Interpolation interpolation) {
  const int64_t height = pixels.size(0);
  torch::Tensor out = torch::empty({1, 3, height, width});
  for (int64_t top = 0; top < height; top += kStripRows) {
    const int64_t rows = std::min(kStripRows, height - top);
    const torch::Tensor strip = ToUnitFloat(pixels.narrow(0, top, rows));
    out.narrow(2, top, rows).copy_(Resize(strip, rows, width, interpolation));
  }
  return out;
}

// [H, W, 3] uint8 pixels on a device -> the resized and cropped float image there,
// [3, out_h, out_w] (a view into the resize's output).
torch::Tensor ResizedCrop(const torch::Tensor& pixels, const ResizePlan& plan) {
  torch::Tensor x;
  if (pixels.is_cpu() && plan.resize_width != pixels.size(1)) {
    x = WidthPassInStrips(pixels, plan.resize_width, plan.interpolation);
    // The height pass alone (the width is the target's already), as in the one-call resize.
    if (plan.resize_height != pixels.size(0)) {
      x = Resize(x, plan.resize_height, plan.resize_width, plan.interpolation);
    }
  } else {
    x = Resize(ToUnitFloat(pixels), plan.resize_height, plan.resize_width, plan.interpolation);
  }
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
