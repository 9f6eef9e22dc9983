// Turns client image bytes into RgbImage, safely: only JPEG, PNG, WebP and BMP are accepted
// (recognised by their magic bytes, before any decoder runs), the dimensions are read from the
// file header and checked against the limits before the full decode (decompression bombs), a
// decoded image must have the header's size (or its transpose, after EXIF orientation),
// EXIF orientation is applied, and grayscale, alpha, palette and 16-bit inputs become RGB8
// (alpha is dropped, 16-bit is scaled to 8-bit).
//
// Errors are InvalidArgument with a message a user can act on, without the image index (the
// caller prefixes "image[i]: "). Thread-safe: free functions without shared state.
#ifndef DINOV3_SERVER_PREPROCESS_IMAGE_DECODER_H_
#define DINOV3_SERVER_PREPROCESS_IMAGE_DECODER_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/types.h"
#include "server/preprocess/resize_plan.h"

namespace dinov3::preprocess {

struct ImageLimits {
  int64_t max_image_bytes = 32 << 20;  // encoded or raw bytes of one image
  int64_t max_pixels = 40'000'000;     // width * height, checked before decoding
  int min_image_side = 8;              // smallest accepted width or height, pixels
};

enum class ImageFormat { kUnknown, kJpeg, kPng, kWebp, kBmp, kGif, kTiff };

// The format named by the first bytes of `bytes` (GIF and TIFF are recognised to be refused
// by name).
ImageFormat SniffFormat(absl::string_view bytes);

// "JPEG", "PNG", ... for messages.
const char* FormatName(ImageFormat format);

struct ImageSize {
  int width = 0;
  int height = 0;
};

// Width and height from the header of a JPEG, PNG, WebP or BMP file, without decoding pixels.
// InvalidArgument when the header is truncated or malformed.
absl::StatusOr<ImageSize> ReadImageSize(absl::string_view bytes, ImageFormat format);

// The checks DecodeImage makes before decoding (byte count, format, header size against the
// limits), alone: the size the decoded image will have (before EXIF rotation), without decoding.
absl::StatusOr<ImageSize> CheckEncodedImage(absl::string_view bytes, const ImageLimits& limits);

// Full decode of an encoded image with the checks described above.
absl::StatusOr<RgbImage> DecodeImage(absl::string_view bytes, const ImageLimits& limits);

// An image decoded at a reduced scale, and the size it has at full scale after EXIF orientation
// (what its resize is planned for).
struct ReducedImage {
  RgbImage image;
  ImageSize full_size;
};

// DecodeImage with every check, but a JPEG is decoded at 1/`reduction` of its size in libjpeg's
// DCT domain (each side ceil(side / reduction)): far less work than a full decode. `reduction`
// is 1, 2, 4 or 8 (InvalidArgument otherwise); other formats have no such decoder and are
// decoded at full size whatever it is.
absl::StatusOr<ReducedImage> DecodeImageReduced(absl::string_view bytes, const ImageLimits& limits,
                                                int reduction);

// Decodes as `options.decode` allows: a JPEG at ChooseDecodeReduction's scale for `geometry`
// (resize_plan.h), anything else, and everything under DecodeMode::kExact, at full size.
absl::StatusOr<ReducedImage> DecodeImageFor(absl::string_view bytes, const ImageLimits& limits,
                                            const PreprocessOptions& options,
                                            const ModelGeometry& geometry);

enum class RawPixelFormat { kRgb8, kBgr8, kGray8, kRgba8 };

// The checks ConvertRawImage makes (positive sides, limits, data length), alone.
absl::Status CheckRawImage(int width, int height, RawPixelFormat format, size_t data_bytes,
                           const ImageLimits& limits);

// Converts raw pixels (row-major, no padding) to RgbImage. InvalidArgument when the data length
// is not width * height * channels, or a limit is broken.
absl::StatusOr<RgbImage> ConvertRawImage(int width, int height, RawPixelFormat format,
                                         absl::string_view data, const ImageLimits& limits);

}  // namespace dinov3::preprocess

#endif  // DINOV3_SERVER_PREPROCESS_IMAGE_DECODER_H_
