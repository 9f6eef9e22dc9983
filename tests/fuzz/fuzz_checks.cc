#include "tests/fuzz/fuzz_checks.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace dinov3::fuzz {

void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
  __builtin_trap();
}

void CheckImage(const RgbImage& image, const preprocess::ImageLimits& limits) {
  Require(image.width >= limits.min_image_side, "width >= min_image_side");
  Require(image.height >= limits.min_image_side, "height >= min_image_side");
  const int64_t pixels = int64_t{image.width} * image.height;
  Require(pixels <= limits.max_pixels, "width * height <= max_pixels");
  Require(image.pixels.size() == static_cast<size_t>(pixels) * 3,
          "pixel buffer size == width * height * 3");
}

void CheckPlan(const ResizePlan& plan, const preprocess::PreprocessOptions& options,
               const preprocess::ModelGeometry& geometry) {
  const int patch = geometry.patch_size;
  Require(plan.resize_height > 0 && plan.resize_width > 0, "resize size positive");
  Require(plan.out_height > 0 && plan.out_width > 0, "output size positive");
  Require(plan.crop_top >= 0 && plan.crop_left >= 0, "crop offset non-negative");
  Require(int64_t{plan.crop_top} + plan.out_height <= plan.resize_height,
          "crop inside the resized image (rows)");
  Require(int64_t{plan.crop_left} + plan.out_width <= plan.resize_width,
          "crop inside the resized image (columns)");
  Require(plan.out_height % patch == 0 && plan.out_width % patch == 0,
          "output sides are multiples of the patch size");
  Require(
      int64_t{plan.resize_height} * plan.resize_width <=
          std::max<int64_t>(geometry.max_resize_pixels, int64_t{plan.out_height} * plan.out_width),
      "resized image within max_resize_pixels");
  const bool own_limit =
      options.mode == preprocess::ResizeMode::kKeepAspect && options.max_patches > 0;
  const int max_patches = own_limit ? options.max_patches : geometry.max_patches;
  Require(int64_t{plan.out_height / patch} * (plan.out_width / patch) <= max_patches,
          "at most max_patches patches");
}

}  // namespace dinov3::fuzz
