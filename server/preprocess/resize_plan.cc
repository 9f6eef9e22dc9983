#include "server/preprocess/resize_plan.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"

namespace dinov3::preprocess {
namespace {

absl::Status CheckPatches(int height, int width, int max_patches, int patch) {
  const int64_t patches = int64_t{height / patch} * (width / patch);
  if (patches > max_patches) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "preprocess: ", height, "x", width, " is ", patches,
                          " patches, above the limit of ", max_patches, " (max_patches)")),
                      kReasonTooLarge);
  }
  return absl::OkStatus();
}

ResizePlan Whole(int height, int width, Interpolation interpolation) {
  return ResizePlan{height, width, 0, 0, height, width, interpolation};
}

// Round half to even, like Python's round() that the reference transforms use.
int RoundHalfEven(double x) { return static_cast<int>(std::nearbyint(x)); }

// Patch-grid sides of the image scaled by `scale`, each at least 1 and at most `cap` (so the
// products below fit easily in int64 whatever the input).
std::pair<int64_t, int64_t> GridSides(int h, int w, double scale, int patch, int cap, bool round) {
  auto side = [&](int pixels) {
    const double patches = pixels * scale / patch;
    const double rounded = round ? std::nearbyint(patches) : std::floor(patches);
    return static_cast<int64_t>(std::clamp(rounded, 1.0, static_cast<double>(cap)));
  };
  return {side(h), side(w)};
}

ResizePlan KeepAspect(int h, int w, const PreprocessOptions& o, const ModelGeometry& g) {
  const int patch = g.patch_size;
  const int max_patches = o.max_patches > 0 ? o.max_patches : g.max_patches;
  double scale = o.height > 0 ? static_cast<double>(o.height) / std::min(h, w) : 1.0;
  auto [grid_h, grid_w] = GridSides(h, w, scale, patch, max_patches, /*round=*/true);
  while (grid_h * grid_w > max_patches) {
    // Shrink uniformly; 0.999 guarantees progress when flooring lands on the same sides.
    scale *= std::sqrt(static_cast<double>(max_patches) / static_cast<double>(grid_h * grid_w));
    scale *= 0.999;
    std::tie(grid_h, grid_w) = GridSides(h, w, scale, patch, max_patches, /*round=*/false);
  }
  return Whole(static_cast<int>(grid_h) * patch, static_cast<int>(grid_w) * patch,
               Interpolation::kBilinear);
}

absl::StatusOr<ResizePlan> CenterCrop(int h, int w, int crop, const ModelGeometry& g) {
  // torchvision Resize(int): the shorter side becomes `size`, the longer int(long*size/short).
  const int size = RoundHalfEven(256.0 * crop / 224.0);
  const bool portrait = h > w;
  const int shorter = std::min(h, w), longer = std::max(h, w);
  const int64_t long_side = std::max<int64_t>(size, int64_t{size} * longer / shorter);
  if (long_side * size > g.max_resize_pixels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "preprocess: a ", w, "x", h, " image is too elongated for "
        "RESIZE_SHORTER_SIDE_CENTER_CROP (it would be resized to ", long_side, "x", size,
        " before cropping, above ", g.max_resize_pixels, " pixels); use RESIZE_FIXED or "
        "RESIZE_KEEP_ASPECT"));
  }
  ResizePlan plan;
  plan.resize_height = portrait ? static_cast<int>(long_side) : size;
  plan.resize_width = portrait ? size : static_cast<int>(long_side);
  // torchvision center_crop: top = int(round((H - crop) / 2)), Python's round.
  plan.crop_top = RoundHalfEven((plan.resize_height - crop) / 2.0);
  plan.crop_left = RoundHalfEven((plan.resize_width - crop) / 2.0);
  plan.out_height = plan.out_width = crop;
  plan.interpolation = Interpolation::kBicubic;
  return plan;
}

}  // namespace

absl::Status ValidateOptions(const PreprocessOptions& o, const ModelGeometry& g) {
  const int patch = g.patch_size;
  if (o.height < 0 || o.width < 0 || o.max_patches < 0) {
    return absl::InvalidArgumentError("preprocess: height, width and max_patches must be >= 0");
  }
  if (o.max_patches > g.max_patches) {
    return absl::InvalidArgumentError(absl::StrCat("preprocess.max_patches ", o.max_patches,
                                                   " is above the server limit of ",
                                                   g.max_patches));
  }
  switch (o.mode) {
    case ResizeMode::kFixed: {
      const int h = o.height > 0 ? o.height : g.default_height;
      const int w = o.width > 0 ? o.width : g.default_width;
      if (h % patch != 0 || w % patch != 0) {
        return absl::InvalidArgumentError(absl::StrCat("preprocess: target size ", h, "x", w,
                                                       " is not a multiple of the patch size ",
                                                       patch));
      }
      return CheckPatches(h, w, g.max_patches, patch);
    }
    case ResizeMode::kShorterSideCenterCrop: {
      const int crop = o.height > 0 ? o.height : g.default_height;
      if (o.width != 0 && o.width != crop) {
        return absl::InvalidArgumentError(
            "preprocess: the centre crop is square; set width to 0 or equal to height");
      }
      if (crop % patch != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "preprocess: crop size ", crop, " is not a multiple of the patch size ", patch));
      }
      return CheckPatches(crop, crop, g.max_patches, patch);
    }
    case ResizeMode::kKeepAspect:
      if (o.width != 0) {
        return absl::InvalidArgumentError(
            "preprocess: RESIZE_KEEP_ASPECT takes height (the shorter side) only; width must "
            "be 0");
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("preprocess: unknown resize mode");
}

absl::StatusOr<ResizePlan> PlanResize(int h, int w, const PreprocessOptions& o,
                                      const ModelGeometry& g) {
  RETURN_IF_ERROR(ValidateOptions(o, g));
  if (h <= 0 || w <= 0) return absl::InvalidArgumentError("preprocess: empty image");
  ResizePlan plan;
  switch (o.mode) {
    case ResizeMode::kFixed:
      plan = Whole(o.height > 0 ? o.height : g.default_height,
                   o.width > 0 ? o.width : g.default_width, Interpolation::kBilinear);
      break;
    case ResizeMode::kShorterSideCenterCrop: {
      ASSIGN_OR_RETURN(plan, CenterCrop(h, w, o.height > 0 ? o.height : g.default_height, g));
      break;
    }
    case ResizeMode::kKeepAspect:
      plan = KeepAspect(h, w, o, g);
      break;
  }
  const int64_t intermediate = ResizeIntermediatePixels(h, w, plan);
  if (intermediate > g.max_resize_pixels) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "preprocess: resizing a ", w, "x", h, " image to ", plan.resize_width,
                          "x", plan.resize_height, " passes through a ", plan.resize_width, "x", h,
                          " image (", intermediate, " pixels), above ", g.max_resize_pixels,
                          " pixels; the image is too elongated for this target size")),
                      kReasonTooLarge);
  }
  return plan;
}

int64_t ResizeIntermediatePixels(int h, int w, const ResizePlan& plan) {
  if (plan.resize_height == h || plan.resize_width == w) return 0;
  return int64_t{h} * plan.resize_width;
}

absl::StatusOr<int> ChooseDecodeReduction(int h, int w, const PreprocessOptions& o,
                                          const ModelGeometry& g) {
  if (o.decode == DecodeMode::kExact) return 1;
  ASSIGN_OR_RETURN(const ResizePlan as_is, PlanResize(h, w, o, g));
  ASSIGN_OR_RETURN(const ResizePlan turned, PlanResize(w, h, o, g));
  // The sides of the stored (unrotated) image that each orientation's resize needs.
  const int64_t need_h = std::max(as_is.resize_height, turned.resize_width);
  const int64_t need_w = std::max(as_is.resize_width, turned.resize_height);
  for (const int reduction : {8, 4, 2}) {
    if (h >= reduction * need_h && w >= reduction * need_w) return reduction;
  }
  return 1;
}

}  // namespace dinov3::preprocess
