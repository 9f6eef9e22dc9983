#include "server/pipeline/job_validation.h"

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"

namespace dinov3::pipeline {

absl::Status CheckImageCount(int64_t count, const RequestLimits& limits) {
  if (count == 0) return absl::InvalidArgumentError("images: the request has no images");
  if (count > limits.max_images_per_request) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "images: ", count, " images in one request, above the limit of ",
                          limits.max_images_per_request, " (max_images_per_request)")),
                      kReasonTooLarge);
  }
  return absl::OkStatus();
}

absl::Status CheckRequestIdLength(size_t bytes) {
  if (bytes <= kMaxIdBytes) return absl::OkStatus();
  return WithReason(
      absl::InvalidArgumentError(absl::StrCat("request_id: ", bytes, " bytes, above the limit of ",
                                              kMaxIdBytes, " bytes")),
      kReasonTooLarge);
}

absl::Status CheckImageIdLength(int index, size_t bytes) {
  if (bytes <= kMaxIdBytes) return absl::OkStatus();
  return WithReason(absl::InvalidArgumentError(absl::StrCat("image[", index, "]: id is ", bytes,
                                                            " bytes, above the limit of ",
                                                            kMaxIdBytes, " bytes")),
                    kReasonTooLarge);
}

absl::Status CheckRequestedSides(int64_t height, int64_t width) {
  if (height <= kMaxRequestedSide && width <= kMaxRequestedSide) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("preprocess: height and width must be at most ", kMaxRequestedSide));
}

absl::Status ValidateJob(const EmbedJob& job, const RequestLimits& limits) {
  RETURN_IF_ERROR(CheckImageCount(static_cast<int64_t>(job.images.size()), limits));
  RETURN_IF_ERROR(CheckRequestIdLength(job.request_id.size()));
  const preprocess::PreprocessOptions& options = job.settings.preprocess;
  RETURN_IF_ERROR(CheckRequestedSides(options.height, options.width));
  RETURN_IF_ERROR(preprocess::ValidateOptions(options, limits.geometry));
  for (size_t i = 0; i < job.images.size(); ++i) {
    RETURN_IF_ERROR(CheckImageIdLength(static_cast<int>(i), job.images[i].id.size()));
  }
  return absl::OkStatus();
}

}  // namespace dinov3::pipeline
