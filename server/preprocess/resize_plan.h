// Where an image goes before the model: the ResizePlan (server/common/types.h) for an image of
// a given size under one of the three preprocessing modes of the API.
//
//   kFixed                   resize to target (default the model's 224x224), bilinear: exactly
//                            the Hugging Face DINOv3 image processor.
//   kShorterSideCenterCrop   the official eval recipe: shorter side to round(256*crop/224)
//                            (bicubic), longer side int(long*that/short), centre crop crop x crop.
//   kKeepAspect              keep the aspect ratio: scale so the shorter side is `height` (0 =
//                            keep the image's size), round both sides to multiples of the patch
//                            size, then shrink until at most max_patches patches.
//
// Pure functions; errors are InvalidArgument naming the field and the limit.
#ifndef DINOV3_SERVER_PREPROCESS_RESIZE_PLAN_H_
#define DINOV3_SERVER_PREPROCESS_RESIZE_PLAN_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "server/common/types.h"

namespace dinov3::preprocess {

enum class ResizeMode { kFixed, kShorterSideCenterCrop, kKeepAspect };

// kExact decodes every image at full size: exactly the reference preprocessing. kFast lets a
// JPEG decode at 1/2, 1/4 or 1/8 scale in the DCT domain (ChooseDecodeReduction); the resize plan
// stays the one for the full-size image, so outputs keep their shape and only their values move.
enum class DecodeMode { kExact, kFast };

struct PreprocessOptions {
  ResizeMode mode = ResizeMode::kFixed;
  DecodeMode decode = DecodeMode::kExact;
  int height = 0;       // 0 = the mode's default
  int width = 0;        // 0 = the mode's default
  int max_patches = 0;  // kKeepAspect; 0 = ModelGeometry::max_patches
};

// What the model and server allow.
struct ModelGeometry {
  int patch_size = 16;
  int default_height = 224;
  int default_width = 224;
  int max_patches = 4096;  // per image, all modes (a 1024x1024 input at patch 16)
  // Largest intermediate resize before the centre crop (guards against extreme aspect ratios).
  int64_t max_resize_pixels = 16 << 20;
};

// Validates the options alone (before any image is decoded).
absl::Status ValidateOptions(const PreprocessOptions& options, const ModelGeometry& geometry);

// Also InvalidArgument when the resize's horizontal pass (ATen resizes the width first) would
// make an intermediate image_height x resize_width above max_resize_pixels.
absl::StatusOr<ResizePlan> PlanResize(int image_height, int image_width,
                                      const PreprocessOptions& options,
                                      const ModelGeometry& geometry);

// Pixels of the resize's horizontal-pass intermediate (0 when only one side changes: ATen then
// resizes in one pass).
int64_t ResizeIntermediatePixels(int image_height, int image_width, const ResizePlan& plan);

// The scale divisor of a fast decode of an image whose header says width x height: the largest
// of 8, 4 and 2 that keeps both sides at least the resize target's, in either orientation (EXIF
// may swap them), so the image is still only scaled down afterwards; 1 (full size) when the
// image is not at least 2x the target on both sides, or options.decode is kExact.
absl::StatusOr<int> ChooseDecodeReduction(int image_height, int image_width,
                                          const PreprocessOptions& options,
                                          const ModelGeometry& geometry);

}  // namespace dinov3::preprocess

#endif  // DINOV3_SERVER_PREPROCESS_RESIZE_PLAN_H_
