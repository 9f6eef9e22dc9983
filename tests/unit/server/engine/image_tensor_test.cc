// The tensor half of preprocessing: the host path (WriteModelInput, PrepareHostInput), the
// device path (ImageToModelInput) and the implementation served before the host path existed
// (a float view of the interleaved pixels, kept here as the reference) give the same bits.
#include "server/engine/image_tensor.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "server/engine/host_input.h"

namespace dinov3::engine {
namespace {

const Normalization kImageNet{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};

RgbImage RandomImage(int width, int height, unsigned seed) {
  std::mt19937 rng(seed);
  RgbImage image{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height * 3)};
  for (uint8_t& v : image.pixels) v = static_cast<uint8_t>(rng());
  return image;
}

// The model input as the server computed it up to this change: a channels-last float image.
torch::Tensor PreviousModelInput(const RgbImage& image, const ResizePlan& plan,
                                 const Normalization& norm) {
  namespace F = torch::nn::functional;
  torch::Tensor x = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                     {image.height, image.width, 3}, torch::kUInt8)
                        .permute({2, 0, 1})
                        .unsqueeze(0)
                        .to(torch::kFloat32);
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
  const torch::Tensor mean = torch::tensor({norm.mean[0], norm.mean[1], norm.mean[2]});
  const torch::Tensor std = torch::tensor({norm.std[0], norm.std[1], norm.std[2]});
  return ((x - mean.view({3, 1, 1})) / std.view({3, 1, 1})).contiguous();
}

struct Case {
  int width;
  int height;
  ResizePlan plan;
};

std::vector<Case> Cases() {
  return {
      {640, 480, {224, 224, 0, 0, 224, 224, Interpolation::kBilinear}},    // down, aspect lost
      {1003, 757, {224, 224, 0, 0, 224, 224, Interpolation::kBilinear}},   // odd sides
      {100, 60, {224, 320, 0, 0, 224, 320, Interpolation::kBilinear}},     // up
      {640, 480, {256, 341, 16, 58, 224, 224, Interpolation::kBicubic}},   // centre crop
      {224, 900, {224, 224, 0, 0, 224, 224, Interpolation::kBilinear}},    // one side kept
      {224, 224, {224, 224, 0, 0, 224, 224, Interpolation::kBilinear}},    // no resize
      {3000, 2000, {448, 672, 0, 0, 448, 672, Interpolation::kBilinear}},  // keep aspect
  };
}

TEST(ImageTensorTest, HostDeviceAndPreviousPathsAreBitIdentical) {
  c10::InferenceMode inference;
  unsigned seed = 1;
  for (const Case& c : Cases()) {
    const RgbImage image = RandomImage(c.width, c.height, seed++);
    const torch::Tensor previous = PreviousModelInput(image, c.plan, kImageNet);
    const torch::Tensor device = ImageToModelInput(image, c.plan, kImageNet, torch::kCPU);
    std::vector<float> host(size_t{3} * c.plan.out_height * c.plan.out_width, -1.0f);
    WriteModelInput(image, c.plan, kImageNet, host.data());
    const torch::Tensor host_tensor =
        torch::from_blob(host.data(), {3, c.plan.out_height, c.plan.out_width});
    ASSERT_EQ(device.sizes(), previous.sizes()) << c.width << "x" << c.height;
    EXPECT_TRUE(torch::equal(device, previous)) << c.width << "x" << c.height;
    EXPECT_TRUE(torch::equal(host_tensor, previous)) << c.width << "x" << c.height;
  }
}

TEST(ImageTensorTest, PrepareHostInputFillsTheInputAndReleasesTheImage) {
  batching::EmbedTask task;
  task.image = RandomImage(500, 375, 7);
  task.plan = {224, 224, 0, 0, 224, 224, Interpolation::kBilinear};
  torch::Tensor expected;
  {
    c10::InferenceMode inference;
    expected = ImageToModelInput(task.image, task.plan, kImageNet, torch::kCPU);
  }
  ASSERT_TRUE(PrepareHostInput(task, kImageNet).ok());
  EXPECT_TRUE(task.image.pixels.empty());
  EXPECT_EQ(task.image.width, 0);
  ASSERT_EQ(task.input.size(), size_t{3} * 224 * 224);
  EXPECT_TRUE(torch::equal(torch::from_blob(task.input.data(), {3, 224, 224}), expected));
}

}  // namespace
}  // namespace dinov3::engine
