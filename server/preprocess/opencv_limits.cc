// OpenCV decoder limits through its environment variables, and a probe of whether they are in
// force. See opencv_limits.h.
#include "server/preprocess/opencv_limits.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace dinov3::preprocess {
namespace {

// OpenCV's default for OPENCV_IO_MAX_IMAGE_WIDTH and _HEIGHT; never raised here.
constexpr int64_t kOpenCvDefaultMaxSide = int64_t{1} << 20;

// The largest side a lossless WebP header can state (14 bits, plus one).
constexpr uint32_t kWebpMaxSide = 1 << 14;
constexpr int64_t kMaxProbedPixels = int64_t{kWebpMaxSide} * kWebpMaxSide;

void AppendLe32(std::string& out, uint32_t value) {
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(value >> shift));
}

// A lossless WebP of width x height (each in [1, 2^14]) whose header is complete but whose image
// data is missing: enough for OpenCV to read the header and run its size check, after which the
// decode fails without a message (a PNG or JPEG decoder would print one to stderr).
std::string WebpHeaderOnly(uint32_t width, uint32_t height) {
  std::string vp8l(1, '\x2F');  // VP8L signature, then width - 1 and height - 1 (14 bits each)
  AppendLe32(vp8l, (width - 1) | (height - 1) << 14);  // alpha hint 0, version 0
  vp8l.append(11, '\0');                               // padding up to OpenCV's 32-byte header
  std::string chunk = "VP8L";
  AppendLe32(chunk, static_cast<uint32_t>(vp8l.size()));
  chunk += vp8l;
  std::string webp = "RIFF";
  AppendLe32(webp, static_cast<uint32_t>(4 + chunk.size()));
  return absl::StrCat(webp, "WEBP", chunk);
}

// True when OpenCV's own size check (loadsave.cpp validateInputImageSize) refuses the image.
bool OpenCvRefusesSize(uint32_t width, uint32_t height) {
  const std::string webp = WebpHeaderOnly(width, height);
  try {
    const cv::Mat buffer(1, static_cast<int>(webp.size()), CV_8UC1, const_cast<char*>(webp.data()));
    cv::imdecode(buffer, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    return absl::StrContains(e.what(), "CV_IO_MAX_IMAGE_");
  }
  return false;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> OpenCvDecoderEnvironment(
    const ImageLimits& limits) {
  const int64_t max_side = std::min(limits.max_pixels / std::max<int64_t>(limits.min_image_side, 1),
                                    kOpenCvDefaultMaxSide);
  return {
      {"OPENCV_IO_MAX_IMAGE_PIXELS", absl::StrCat(limits.max_pixels)},
      {"OPENCV_IO_MAX_IMAGE_WIDTH", absl::StrCat(max_side)},
      {"OPENCV_IO_MAX_IMAGE_HEIGHT", absl::StrCat(max_side)},
      {"OPENCV_IO_ENABLE_OPENEXR", "0"},
      {"OPENCV_IO_ENABLE_JASPER", "0"},
  };
}

bool OpenCvEnforcesPixelLimit(int64_t max_pixels) {
  if (max_pixels < 1 || max_pixels >= kMaxProbedPixels) return false;
  // Images just outside and just inside the limit, with the same width, near-square.
  const auto width =
      std::min(static_cast<uint32_t>(std::ceil(std::sqrt(static_cast<double>(max_pixels + 1)))),
               kWebpMaxSide);
  const auto outside = static_cast<uint32_t>((max_pixels + width) / width);  // ceil((max+1)/w)
  const auto inside = static_cast<uint32_t>(max_pixels / width);
  return OpenCvRefusesSize(width, outside) && (inside == 0 || !OpenCvRefusesSize(width, inside));
}

absl::Status ApplyOpenCvDecoderLimits(const ImageLimits& limits) {
  for (const auto& [name, value] : OpenCvDecoderEnvironment(limits)) {
    setenv(name.c_str(), value.c_str(), /*overwrite=*/1);
  }
  if (limits.max_pixels < 1 || limits.max_pixels >= kMaxProbedPixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_pixels ", limits.max_pixels, " is outside [1, ", kMaxProbedPixels,
                     "), the range in which OpenCV's own limit can be checked"));
  }
  if (OpenCvEnforcesPixelLimit(limits.max_pixels)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "OpenCV does not enforce max_pixels ", limits.max_pixels,
      " itself: it read OPENCV_IO_MAX_IMAGE_PIXELS when it was loaded, before the environment "
      "was set; a process started with this environment (e.g. re-executed) enforces it"));
}

}  // namespace dinov3::preprocess
