// libFuzzer target: the image decode and validation path of server/preprocess, under the
// limits a small server would use (max_pixels 4M: a decompression bomb must be refused by the
// header check, before OpenCV allocates anything).
//
// Each input goes through two paths:
//   1. DecodeImage(input) — the encoded path (JPEG, PNG, WebP, BMP; everything else refused).
//      On success the image honours the limits, and OpenCV produced no more pixels than the
//      header promised (else the pre-decode bomb check could be bypassed).
//   1b. DecodeImageReduced(input, 2, 4 or 8 from the last byte) — the fast decode (JPEG DCT
//      scaling). On success the full size honours the limits and is the header's (or its
//      transpose), and the image is that size divided by the reduction, rounded up (JPEG), or
//      the full size (other formats).
//   2. ConvertRawImage(width, height, format, rest) — the raw path, with a signed 16-bit width
//      and height and the format from the first 5 bytes. On success the image honours the limits
//      and has the requested size, and RGB8/GRAY8 pixels come through unchanged.
// A broken invariant traps (tests/fuzz/fuzz_checks.h). OpenCV's own size limits
// (server/preprocess/opencv_limits.h) are deliberately left at OpenCV's defaults: the header
// checks must hold alone, and an image that slipped past them would show up as an allocation
// above libFuzzer's -malloc_limit_mb (scripts/fuzz.sh).
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "server/preprocess/image_decoder.h"
#include "tests/fuzz/fuzz_checks.h"

namespace dinov3::fuzz {
namespace {

preprocess::ImageLimits Limits() {
  preprocess::ImageLimits limits;
  limits.max_image_bytes = 1 << 20;
  limits.max_pixels = 4'000'000;
  limits.min_image_side = 8;
  return limits;
}

void FuzzEncoded(absl::string_view bytes, const preprocess::ImageLimits& limits) {
  absl::StatusOr<RgbImage> image = preprocess::DecodeImage(bytes, limits);
  if (!image.ok()) return;
  CheckImage(*image, limits);
  const absl::StatusOr<preprocess::ImageSize> header =
      preprocess::ReadImageSize(bytes, preprocess::SniffFormat(bytes));
  Require(header.ok(), "a decoded image has a readable header");
  Require(int64_t{image->width} * image->height <= int64_t{header->width} * header->height,
          "the decoder made no more pixels than the header announced");
}

void FuzzReduced(absl::string_view bytes, const preprocess::ImageLimits& limits) {
  if (bytes.empty()) return;
  const int reduction = 2 << (static_cast<uint8_t>(bytes.back()) % 3);
  absl::StatusOr<preprocess::ReducedImage> decoded =
      preprocess::DecodeImageReduced(bytes, limits, reduction);
  if (!decoded.ok()) return;
  const preprocess::ImageSize full = decoded->full_size;
  const absl::StatusOr<preprocess::ImageSize> header =
      preprocess::ReadImageSize(bytes, preprocess::SniffFormat(bytes));
  Require(header.ok(), "a decoded image has a readable header");
  Require((full.width == header->width && full.height == header->height) ||
              (full.width == header->height && full.height == header->width),
          "the full size is the header's, or its transpose");
  Require(full.width >= limits.min_image_side && full.height >= limits.min_image_side &&
              int64_t{full.width} * full.height <= limits.max_pixels,
          "the full size honours the limits");
  const int r = preprocess::SniffFormat(bytes) == preprocess::ImageFormat::kJpeg ? reduction : 1;
  const RgbImage& image = decoded->image;
  Require(image.width == (full.width + r - 1) / r && image.height == (full.height + r - 1) / r,
          "the image is its full size divided by the reduction, rounded up");
  Require(image.pixels.size() == size_t{3} * image.width * image.height,
          "width * height * 3 pixel bytes");
}

void FuzzRaw(absl::string_view bytes, const preprocess::ImageLimits& limits) {
  if (bytes.size() < 5) return;
  const auto u8 = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  const int width = static_cast<int16_t>(u8(0) | u8(1) << 8);
  const int height = static_cast<int16_t>(u8(2) | u8(3) << 8);
  const auto format = static_cast<preprocess::RawPixelFormat>(u8(4) % 4);
  const absl::string_view data = bytes.substr(5);
  absl::StatusOr<RgbImage> image = preprocess::ConvertRawImage(width, height, format, data, limits);
  if (!image.ok()) return;
  CheckImage(*image, limits);
  Require(image->width == width && image->height == height, "raw image keeps its size");
  if (format == preprocess::RawPixelFormat::kRgb8) {
    Require(absl::string_view(reinterpret_cast<const char*>(image->pixels.data()),
                              image->pixels.size()) == data,
            "RGB8 pixels come through unchanged");
  } else if (format == preprocess::RawPixelFormat::kGray8) {
    for (size_t i = 0; i < data.size(); ++i) {
      const uint8_t gray = static_cast<uint8_t>(data[i]);
      Require(image->pixels[3 * i] == gray && image->pixels[3 * i + 1] == gray &&
                  image->pixels[3 * i + 2] == gray,
              "GRAY8 pixels become equal R, G and B");
    }
  }
}

}  // namespace
}  // namespace dinov3::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dinov3::preprocess::ImageLimits limits = dinov3::fuzz::Limits();
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  dinov3::fuzz::FuzzEncoded(bytes, limits);
  dinov3::fuzz::FuzzReduced(bytes, limits);
  dinov3::fuzz::FuzzRaw(bytes, limits);
  return 0;
}
