// The tensor half of preprocessing: RgbImage + ResizePlan -> normalised model input, exactly as
// the Hugging Face DINOv3 image processor computes it (DESIGN.md §5): uint8 -> float * (1/255)
// -> antialiased resize (ATen's interpolate, align_corners=false) -> crop -> (x - mean) / std.
// Runs on `device`, so on GPU only the uint8 pixels cross the bus, staged in pinned memory and
// copied asynchronously on the current stream (the caller synchronises before reading results).
#ifndef DINOV3_SERVER_ENGINE_IMAGE_TENSOR_H_
#define DINOV3_SERVER_ENGINE_IMAGE_TENSOR_H_

#include <torch/torch.h>

#include <array>

#include "server/common/types.h"

namespace dinov3::engine {

struct Normalization {
  std::array<float, 3> mean{};
  std::array<float, 3> std{};
};

// Returns [3, plan.out_height, plan.out_width] float32 on `device`. `image` must be non-empty;
// throws c10::Error only on allocation failure.
torch::Tensor ImageToModelInput(const RgbImage& image, const ResizePlan& plan,
                                const Normalization& norm, const torch::Device& device);

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_IMAGE_TENSOR_H_
