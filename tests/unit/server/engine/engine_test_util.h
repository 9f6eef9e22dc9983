// Helpers of the engine tests: the fixture model, deterministic images and tasks that record
// how they were finished.
#ifndef DINOV3_TESTS_UNIT_SERVER_ENGINE_ENGINE_TEST_UTIL_H_
#define DINOV3_TESTS_UNIT_SERVER_ENGINE_ENGINE_TEST_UTIL_H_

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "server/batching/task.h"
#include "server/common/types.h"

namespace dinov3::engine::test_util {

// The random 2-block vits16 written by the model_runtime_fixtures CTest fixture.
inline std::string ModelPath() {
  const char* path = std::getenv("DINOV3_ENGINE_TEST_MODEL");
  return path != nullptr ? path : "model.pt";
}

// The device the model-running tests use: DINOV3_ENGINE_TEST_DEVICE, else "cpu" (CTest runs
// them on CPU; scripts/gpu-check.sh runs the binary again with cuda:0).
inline std::string TestDevice() {
  const char* device = std::getenv("DINOV3_ENGINE_TEST_DEVICE");
  return device != nullptr && *device != '\0' ? device : "cpu";
}

inline RgbImage RandomImage(int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  RgbImage image{width, height, {}};
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (uint8_t& p : image.pixels) p = static_cast<uint8_t>(byte(rng));
  return image;
}

// No resize, no crop: the image is already out_height x out_width.
inline ResizePlan Identity(int height, int width) {
  return ResizePlan{height, width, 0, 0, height, width, Interpolation::kBilinear};
}

// How a task was finished.
struct Outcome {
  int calls = 0;
  absl::StatusOr<EmbeddingResult> result = absl::UnknownError("not finished");
};

inline std::unique_ptr<batching::EmbedTask> MakeTask(RgbImage image, const ResizePlan& plan,
                                                     Outcome* outcome) {
  auto task = std::make_unique<batching::EmbedTask>();
  task->image = std::move(image);
  task->plan = plan;
  task->outputs = OutputSet{.cls = true, .pooled = true, .patch_tokens = true, .registers = true};
  task->done = [outcome](absl::StatusOr<EmbeddingResult> result) {
    ++outcome->calls;
    outcome->result = std::move(result);
  };
  return task;
}

}  // namespace dinov3::engine::test_util

#endif  // DINOV3_TESTS_UNIT_SERVER_ENGINE_ENGINE_TEST_UTIL_H_
