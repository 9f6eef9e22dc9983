// dinov3-preprocess-dump: runs the server's preprocessing (decode, resize plan, tensor
// normalisation) on one image file and writes the model input as raw little-endian float32
// [3, H, W] to OUT, printing "H W" on stdout. For the Python parity tests against the Hugging
// Face image processor; not part of the product.
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "server/engine/image_tensor.h"
#include "server/preprocess/image_decoder.h"
#include "server/preprocess/resize_plan.h"

ABSL_FLAG(std::string, mode, "fixed", "fixed, crop or keep_aspect");
ABSL_FLAG(int, height, 0, "Target height (0 = the mode's default)");
ABSL_FLAG(int, width, 0, "Target width (0 = the mode's default)");
ABSL_FLAG(int, max_patches, 0, "keep_aspect: most patches (0 = server default)");
ABSL_FLAG(std::vector<std::string>, mean, {}, "Normalisation mean (default LVD-1689M)");
ABSL_FLAG(std::vector<std::string>, std, {}, "Normalisation std (default LVD-1689M)");

namespace {

std::array<float, 3> ThreeFloats(const std::vector<std::string>& values,
                                 std::array<float, 3> fallback) {
  if (values.size() != 3) return fallback;
  return {std::stof(values[0]), std::stof(values[1]), std::stof(values[2])};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 3) {
    std::cerr << "usage: dinov3-preprocess-dump [flags] IMAGE OUT.f32\n";
    return 2;
  }
  std::ifstream in(args[1], std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto image = dinov3::preprocess::DecodeImage(bytes, {});
  if (!image.ok()) {
    std::cerr << "error: " << image.status().message() << "\n";
    return 1;
  }
  using dinov3::preprocess::ResizeMode;
  const std::string mode = absl::GetFlag(FLAGS_mode);
  dinov3::preprocess::PreprocessOptions options;
  options.mode = mode == "crop"          ? ResizeMode::kShorterSideCenterCrop
                 : mode == "keep_aspect" ? ResizeMode::kKeepAspect
                                         : ResizeMode::kFixed;
  options.height = absl::GetFlag(FLAGS_height);
  options.width = absl::GetFlag(FLAGS_width);
  options.max_patches = absl::GetFlag(FLAGS_max_patches);
  auto plan = dinov3::preprocess::PlanResize(image->height, image->width, options, {});
  if (!plan.ok()) {
    std::cerr << "error: " << plan.status().message() << "\n";
    return 1;
  }
  const dinov3::engine::Normalization norm{
      ThreeFloats(absl::GetFlag(FLAGS_mean), {0.485f, 0.456f, 0.406f}),
      ThreeFloats(absl::GetFlag(FLAGS_std), {0.229f, 0.224f, 0.225f})};
  const torch::Tensor x = dinov3::engine::ImageToModelInput(*image, *plan, norm, torch::kCPU);
  std::ofstream(args[2], std::ios::binary)
      .write(static_cast<const char*>(x.data_ptr()), x.numel() * sizeof(float));
  std::cout << x.size(1) << " " << x.size(2) << "\n";
  return 0;
}
