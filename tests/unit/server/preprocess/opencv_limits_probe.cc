// Helper process for opencv_limits_test: OpenCV 4.6 reads its size limits when the process
// starts, so they can only be observed in a fresh process.
//
// Usage: opencv_limits_probe [--reexec] <max_pixels> <min_image_side> [<width>x<height> ...]
// Calls ApplyOpenCvDecoderLimits with these limits and prints "apply: <status code>", then, for
// each size, encodes a PNG of that size and prints "decode WxH: ok" or "decode WxH: refused"
// according to what cv::imdecode itself (not DecodeImage) does with it. With --reexec the probe
// does what the server's main() is meant to do: when the limits are not in force, it re-executes
// itself once (the environment is set by then) and the second run reports.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/preprocess/opencv_limits.h"

namespace {

const char* DecodeResult(int width, int height) {
  std::vector<uchar> png;
  if (!cv::imencode(".png", cv::Mat(height, width, CV_8UC3, cv::Scalar(10, 20, 30)), png)) {
    return "encode failed";
  }
  try {
    return cv::imdecode(png, cv::IMREAD_COLOR).empty() ? "empty" : "ok";
  } catch (const cv::Exception&) {
    return "refused";
  }
}

}  // namespace

int main(int argc, char** argv) {
  int arg = 1;
  const bool reexec = arg < argc && std::string(argv[arg]) == "--reexec";
  if (reexec) ++arg;
  if (argc - arg < 2) {
    std::fprintf(stderr, "usage: %s [--reexec] max_pixels min_side [WxH ...]\n", argv[0]);
    return 2;
  }
  dinov3::preprocess::ImageLimits limits;
  limits.max_pixels = std::atoll(argv[arg++]);
  limits.min_image_side = std::atoi(argv[arg++]);
  const absl::Status status = dinov3::preprocess::ApplyOpenCvDecoderLimits(limits);
  if (reexec && status.code() == absl::StatusCode::kFailedPrecondition &&
      std::getenv("OPENCV_LIMITS_PROBE_REEXECUTED") == nullptr) {
    setenv("OPENCV_LIMITS_PROBE_REEXECUTED", "1", 1);
    execv("/proc/self/exe", argv);
    std::perror("execv");
    return 3;
  }
  std::printf("apply: %s\n", absl::StatusCodeToString(status.code()).c_str());
  for (; arg < argc; ++arg) {
    int width = 0, height = 0;
    if (std::sscanf(argv[arg], "%dx%d", &width, &height) != 2) return 2;
    std::printf("decode %dx%d: %s\n", width, height, DecodeResult(width, height));
  }
  return 0;
}
