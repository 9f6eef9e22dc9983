// The tensor half of preprocessing: RgbImage + ResizePlan -> normalised model input, exactly as
// the Hugging Face DINOv3 image processor computes it (DESIGN.md §5): uint8 -> float * (1/255)
// -> antialiased resize (ATen's interpolate, align_corners=false) -> crop -> (x - mean) / std.
// Two places compute it, with bit-identical results (tests/unit/server/engine):
//   - ImageToModelInput on an instance's device: on a GPU only the uint8 pixels cross the bus,
//     staged in pinned memory and copied asynchronously on the current stream (the caller
//     synchronises before reading results);
//   - WriteModelInput on the host, into a caller's buffer: what the preprocess pool runs for CPU
//     instances, so their threads only stack inputs and run the model.
// The float image is contiguous NCHW (not a channels-last view of the pixels): the same values,
// and ATen's antialiased resize is about twice as fast on it.
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

// The same values on the CPU, written to `out` (3 * out_height * out_width floats, CHW,
// row-major). Besides `out` it holds the float image (12 bytes per pixel), the resize's
// horizontal-pass intermediate and its output (request_footprint.h, HostInputTransientBytes).
// Runs with the calling thread's intra-op threads. Throws c10::Error only on allocation failure.
void WriteModelInput(const RgbImage& image, const ResizePlan& plan, const Normalization& norm,
                     float* out);

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_IMAGE_TENSOR_H_
