// One image of an EmbedJob before the model: its decoded size (from an encoded file's header, or
// a raw image's sides) with every check the decoder makes before decoding, and its decoding into
// RGB8. Errors are InvalidArgument naming what is wrong (the caller adds the image index).
// Plain functions; protocol-free.
#ifndef DINOV3_SERVER_PIPELINE_JOB_IMAGE_H_
#define DINOV3_SERVER_PIPELINE_JOB_IMAGE_H_

#include "absl/status/statusor.h"
#include "server/pipeline/embed_job.h"
#include "server/pipeline/request_limits.h"
#include "server/preprocess/image_decoder.h"
#include "server/preprocess/resize_plan.h"

namespace dinov3::pipeline {

// The decoded size of `image`, with every check the decoder makes before decoding.
absl::StatusOr<preprocess::ImageSize> JobImageSize(const JobImage& image,
                                                   const preprocess::ImageLimits& limits);

// `image` as RGB8 within the image limits, a JPEG at the scale `options.decode` allows
// (preprocess::ChooseDecodeReduction against limits.geometry); full_size is what its resize is
// planned for.
absl::StatusOr<preprocess::ReducedImage> DecodeJobImage(
    const JobImage& image, const RequestLimits& limits,
    const preprocess::PreprocessOptions& options);

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_JOB_IMAGE_H_
