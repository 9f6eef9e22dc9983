// Invariants the fuzz targets check on every successful result. A broken invariant is a bug even
// when no sanitizer fires, so it ends the process with __builtin_trap() after printing what was
// wrong (libFuzzer then saves the input as a crash artifact).
#ifndef DINOV3_TESTS_FUZZ_FUZZ_CHECKS_H_
#define DINOV3_TESTS_FUZZ_FUZZ_CHECKS_H_

#include "server/common/types.h"
#include "server/preprocess/image_decoder.h"
#include "server/preprocess/resize_plan.h"

namespace dinov3::fuzz {

// Prints `what` to stderr and traps when `ok` is false.
void Require(bool ok, const char* what);

// A decoded image honours the limits it was decoded under: both sides >= min_image_side,
// width * height <= max_pixels, and exactly width * height * 3 pixel bytes.
void CheckImage(const RgbImage& image, const preprocess::ImageLimits& limits);

// A resize plan the engine can execute for an image_height x image_width image: positive sizes,
// the crop inside the resized image, output sides multiples of the patch size and at most
// max_patches patches (the request's own max_patches in RESIZE_KEEP_ASPECT when set, else the
// model's).
void CheckPlan(const ResizePlan& plan, const preprocess::PreprocessOptions& options,
               const preprocess::ModelGeometry& geometry);

}  // namespace dinov3::fuzz

#endif  // DINOV3_TESTS_FUZZ_FUZZ_CHECKS_H_
