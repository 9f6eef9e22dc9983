// OpenCV's own decoder limits, as a second line behind the header checks of DecodeImage: even
// if a file's header and its decoder disagreed, OpenCV itself refuses to allocate an image above
// the configured size.
//
// OpenCV reads these settings from environment variables. In OpenCV 4.6 (Debian 12)
// OPENCV_IO_MAX_IMAGE_{WIDTH,HEIGHT,PIXELS} are namespace-scope constants of
// modules/imgcodecs/src/loadsave.cpp: they are read once, when libopencv_imgcodecs is loaded,
// i.e. before main() runs. Setting them inside the process therefore takes effect only in a
// process started afterwards with this environment (a re-exec of the server, or child
// processes); ApplyOpenCvDecoderLimits() reports which case holds. The codec switches
// (OPENCV_IO_ENABLE_OPENEXR, OPENCV_IO_ENABLE_JASPER) are read lazily, on first use of the codec.
//
// Thread-safety: ApplyOpenCvDecoderLimits() calls setenv(), which is not thread-safe: call it
// once, early in main(), before any thread starts and before the first decode.
#ifndef DINOV3_SERVER_PREPROCESS_OPENCV_LIMITS_H_
#define DINOV3_SERVER_PREPROCESS_OPENCV_LIMITS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/preprocess/image_decoder.h"

namespace dinov3::preprocess {

// The environment that makes OpenCV enforce `limits` (name, value pairs):
//   OPENCV_IO_MAX_IMAGE_PIXELS   limits.max_pixels
//   OPENCV_IO_MAX_IMAGE_WIDTH    the widest image the limits accept, max_pixels / min_image_side,
//   OPENCV_IO_MAX_IMAGE_HEIGHT   at most OpenCV's default of 2^20 (the same for the height)
//   OPENCV_IO_ENABLE_OPENEXR     0 (OpenEXR decoder off; DecodeImage never passes EXR anyway)
//   OPENCV_IO_ENABLE_JASPER      0 (JPEG 2000 via Jasper off, in builds that have it)
std::vector<std::pair<std::string, std::string>> OpenCvDecoderEnvironment(
    const ImageLimits& limits);

// Whether OpenCV's imdecode, as loaded in this process, refuses an image of more than
// `max_pixels` pixels by its own size check, and does not refuse one of at most `max_pixels`
// (within one row of it). Probes with two lossless WebP headers without pixel data (OpenCV
// allocates the image that passes its check, untouched, and the decode fails quietly). False for
// `max_pixels` outside [1, 2^28), which a WebP header cannot probe.
bool OpenCvEnforcesPixelLimit(int64_t max_pixels);

// Sets the environment of OpenCvDecoderEnvironment(limits) (overwriting), then checks that
// OpenCV enforces limits.max_pixels. OK when it does. InvalidArgument when max_pixels is outside
// [1, 2^28) (the environment is set, but cannot be checked). FailedPrecondition when OpenCV read
// its limits before this call (always the case with OpenCV 4.6 unless the process was started with
// this environment): the environment is set now, so re-executing the process
// (execv("/proc/self/exe", argv)) makes the limits effective; without that the header checks of
// DecodeImage remain the only size limit.
absl::Status ApplyOpenCvDecoderLimits(const ImageLimits& limits);

}  // namespace dinov3::preprocess

#endif  // DINOV3_SERVER_PREPROCESS_OPENCV_LIMITS_H_
