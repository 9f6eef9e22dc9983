#include "server/pipeline/job_image.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"

namespace dinov3::pipeline {
namespace {

// Refuses a raw image whose sides would not fit in int before any limit is applied.
absl::Status CheckRawSides(const RawPixels& raw) {
  constexpr int64_t kMaxSide = 1 << 20;
  if (raw.width > kMaxSide || raw.height > kMaxSide) {
    return WithReason(
        absl::InvalidArgumentError(absl::StrCat("raw image ", raw.width, "x", raw.height,
                                                " is larger than any limit allows")),
        kReasonTooLarge);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<preprocess::ImageSize> JobImageSize(const JobImage& image,
                                                   const preprocess::ImageLimits& limits) {
  if (!image.raw) return preprocess::CheckEncodedImage(image.bytes, limits);
  const RawPixels& raw = *image.raw;
  RETURN_IF_ERROR(CheckRawSides(raw));
  const int width = static_cast<int>(raw.width);
  const int height = static_cast<int>(raw.height);
  RETURN_IF_ERROR(preprocess::CheckRawImage(width, height, raw.format, image.bytes.size(), limits));
  return preprocess::ImageSize{width, height};
}

absl::StatusOr<preprocess::ReducedImage> DecodeJobImage(
    const JobImage& image, const RequestLimits& limits,
    const preprocess::PreprocessOptions& options) {
  if (!image.raw) {
    return preprocess::DecodeImageFor(image.bytes, limits.image, options, limits.geometry);
  }
  const RawPixels& raw = *image.raw;
  RETURN_IF_ERROR(CheckRawSides(raw));
  ASSIGN_OR_RETURN(RgbImage rgb, preprocess::ConvertRawImage(
                                     static_cast<int>(raw.width), static_cast<int>(raw.height),
                                     raw.format, image.bytes, limits.image));
  const preprocess::ImageSize size{rgb.width, rgb.height};
  return preprocess::ReducedImage{std::move(rgb), size};
}

}  // namespace dinov3::pipeline
