// The checks of an EmbedJob that need no decoding: image count, id lengths, preprocessing
// options. ValidateJob runs them all, in this order, on admission; a front door that maps a
// protocol field by field may run the single checks in its own order first (the native API does,
// so that its errors come out in the order of its fields), with the same messages.
//
// Errors are InvalidArgument naming the field (and image index) and the limit; those about a
// size carry reason too_large (status_reason.h). Plain functions; protocol-free.
#ifndef DINOV3_SERVER_PIPELINE_JOB_VALIDATION_H_
#define DINOV3_SERVER_PIPELINE_JOB_VALIDATION_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "server/pipeline/embed_job.h"
#include "server/pipeline/request_limits.h"

namespace dinov3::pipeline {

// At least one image, at most limits.max_images_per_request.
absl::Status CheckImageCount(int64_t count, const RequestLimits& limits);
// A request_id of at most kMaxIdBytes.
absl::Status CheckRequestIdLength(size_t bytes);
// Image `index`'s id of at most kMaxIdBytes.
absl::Status CheckImageIdLength(int index, size_t bytes);
// Requested output height and width of at most kMaxRequestedSide.
inline constexpr int64_t kMaxRequestedSide = 1 << 14;
absl::Status CheckRequestedSides(int64_t height, int64_t width);

// All of the above and preprocess::ValidateOptions, for the whole job.
absl::Status ValidateJob(const EmbedJob& job, const RequestLimits& limits);

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_JOB_VALIDATION_H_
