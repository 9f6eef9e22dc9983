#include "server/engine/image_tensor.h"

namespace dinov3::engine {

torch::Tensor ImageToModelInput(const RgbImage& image, const ResizePlan& plan,
                                const Normalization& norm, const torch::Device& device) {
  namespace F = torch::nn::functional;
  // from_blob does not own the pixels: both paths copy them before `image` can go away (on a
  // CPU the float conversion is that copy, so a full-size image is held once more as float32
  // only, 12 bytes per pixel, scaled in place). To a GPU they go through pinned memory, so the
  // upload is asynchronous on the current stream (the caching host allocator keeps the pinned
  // block until the copy is done).
  const torch::Tensor host = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                              {image.height, image.width, 3}, torch::kUInt8);
  const torch::Tensor pixels =
      device.is_cuda() ? host.pin_memory().to(device, /*non_blocking=*/true) : host;
  torch::Tensor x = pixels.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);
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
  x = F::interpolate(x, resize);
  x = x.index({0, torch::indexing::Slice(),
               torch::indexing::Slice(plan.crop_top, plan.crop_top + plan.out_height),
               torch::indexing::Slice(plan.crop_left, plan.crop_left + plan.out_width)});
  // non_blocking: a synchronous copy would wait for the stream after every image.
  const torch::Tensor mean = torch::tensor({norm.mean[0], norm.mean[1], norm.mean[2]})
                                 .view({3, 1, 1})
                                 .to(device, /*non_blocking=*/true);
  const torch::Tensor std = torch::tensor({norm.std[0], norm.std[1], norm.std[2]})
                                .view({3, 1, 1})
                                .to(device, /*non_blocking=*/true);
  return ((x - mean) / std).contiguous();
}

}  // namespace dinov3::engine
