// Image bytes -> RgbImage: magic-byte sniffing, header size checks before decoding, OpenCV decode
// (EXIF orientation, any depth/channels -> BGR8), BGR -> RGB. See image_decoder.h.
#include "server/preprocess/image_decoder.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <new>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"
#include "server/preprocess/image_header.h"

namespace dinov3::preprocess {
namespace {

constexpr absl::string_view kSendAccepted = "send JPEG, PNG, WebP or BMP";
constexpr absl::string_view kPngSignature("\x89PNG\r\n\x1a\n", 8);

// "ff d8 ff e0 ..." for the first (up to 8) bytes.
std::string FirstBytesHex(absl::string_view bytes) {
  constexpr size_t kShown = 8;
  std::string hex;
  for (size_t i = 0; i < bytes.size() && i < kShown; ++i) {
    absl::StrAppend(&hex, i == 0 ? "" : " ",
                    absl::Hex(static_cast<uint8_t>(bytes[i]), absl::kZeroPad2));
  }
  if (bytes.size() > kShown) absl::StrAppend(&hex, " ...");
  return hex;
}

absl::Status CheckByteCount(size_t size, const ImageLimits& limits) {
  if (static_cast<uint64_t>(size) > static_cast<uint64_t>(limits.max_image_bytes)) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "image is ", size, " bytes, above the limit of ", limits.max_image_bytes,
                          " bytes (max_image_bytes)")),
                      kReasonTooLarge);
  }
  return absl::OkStatus();
}

// The side and pixel-count limits, for a header, a decoded image or raw pixels.
absl::Status CheckDimensions(int64_t width, int64_t height, const ImageLimits& limits) {
  if (width < limits.min_image_side || height < limits.min_image_side) {
    return absl::InvalidArgumentError(
        absl::StrCat("image is ", width, "x", height, ", below the minimum side of ",
                     limits.min_image_side, " pixels (min_image_side)"));
  }
  const int64_t pixels = width * height;  // both sides fit in int: no overflow
  if (pixels > limits.max_pixels) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "image is ", width, "x", height, " = ", pixels,
                          " pixels, above the limit of ", limits.max_pixels, " (max_pixels)")),
                      kReasonTooLarge);
  }
  return absl::OkStatus();
}

absl::Status CouldNotDecode(ImageFormat format) {
  return absl::InvalidArgumentError(
      absl::StrCat("could not decode ", FormatName(format), " data (corrupt or truncated)"));
}

// Copies 8-bit BGR pixels into a tightly packed RgbImage.
absl::StatusOr<RgbImage> BgrToRgbImage(const cv::Mat& bgr) {
  RgbImage image;
  image.width = bgr.cols;
  image.height = bgr.rows;
  image.pixels.resize(static_cast<size_t>(bgr.cols) * bgr.rows * 3);
  cv::Mat rgb(bgr.rows, bgr.cols, CV_8UC3, image.pixels.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  if (rgb.data != image.pixels.data()) {
    return absl::InternalError("colour conversion did not write into the output buffer");
  }
  return image;
}

// The imdecode flag of a JPEG decode at 1/reduction scale.
int ReducedColorFlag(int reduction) {
  switch (reduction) {
    case 2:
      return cv::IMREAD_REDUCED_COLOR_2;
    case 4:
      return cv::IMREAD_REDUCED_COLOR_4;
    case 8:
      return cv::IMREAD_REDUCED_COLOR_8;
    default:
      break;
  }
  return cv::IMREAD_COLOR;
}

int CeilDiv(int side, int reduction) { return (side + reduction - 1) / reduction; }

// OpenCV decode and conversion, with its exceptions turned into statuses. IMREAD_COLOR (and its
// REDUCED forms) applies the EXIF orientation and gives 8-bit BGR for grayscale, palette, alpha
// and 16-bit inputs. `reduction` > 1 for JPEG only.
absl::StatusOr<ReducedImage> DecodeWithOpenCv(absl::string_view bytes, ImageFormat format,
                                              ImageSize header, const ImageLimits& limits,
                                              int reduction) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    return WithReason(
        absl::InvalidArgumentError(absl::StrCat("image is ", bytes.size(), " bytes, too large")),
        kReasonTooLarge);
  }
  try {
    // imdecode only reads the buffer; the const_cast just lets cv::Mat wrap it without a copy.
    const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8UC1,
                         const_cast<char*>(bytes.data()));
    const cv::Mat bgr = cv::imdecode(buffer, ReducedColorFlag(reduction));
    if (bgr.empty()) return CouldNotDecode(format);
    if (bgr.type() != CV_8UC3) {
      return absl::InternalError("the decoder returned an unexpected pixel type");
    }
    // The header was checked already; this catches EXIF rotation and headers that disagree
    // (the memory reserved for the image was sized from the header, either orientation).
    const int width = CeilDiv(header.width, reduction);
    const int height = CeilDiv(header.height, reduction);
    const bool as_header = bgr.cols == width && bgr.rows == height;
    const bool transposed = bgr.cols == height && bgr.rows == width;
    if (!as_header && !transposed) {
      return absl::InvalidArgumentError(absl::StrCat(
          "decoded ", FormatName(format), " is ", bgr.cols, "x", bgr.rows, ", but its header says ",
          header.width, "x", header.height, reduction > 1 ? absl::StrCat(" / ", reduction) : ""));
    }
    const ImageSize full = as_header ? header : ImageSize{header.height, header.width};
    RETURN_IF_ERROR(CheckDimensions(full.width, full.height, limits));
    ASSIGN_OR_RETURN(RgbImage image, BgrToRgbImage(bgr));
    return ReducedImage{std::move(image), full};
  } catch (const cv::Exception&) {
    return CouldNotDecode(format);
  } catch (const std::bad_alloc&) {
    return WithReason(absl::ResourceExhaustedError("not enough memory to decode the image"),
                      kReasonOutOfMemory);
  }
}

int Channels(RawPixelFormat format) {
  switch (format) {
    case RawPixelFormat::kGray8:
      return 1;
    case RawPixelFormat::kRgba8:
      return 4;
    case RawPixelFormat::kRgb8:
    case RawPixelFormat::kBgr8:
      break;
  }
  return 3;
}

const char* RawFormatName(RawPixelFormat format) {
  switch (format) {
    case RawPixelFormat::kRgb8:
      return "RGB8";
    case RawPixelFormat::kBgr8:
      return "BGR8";
    case RawPixelFormat::kGray8:
      return "GRAY8";
    case RawPixelFormat::kRgba8:
      return "RGBA8";
  }
  return "unknown";
}

// Converts validated raw pixels; `data` holds exactly width * height * Channels(format) bytes.
absl::StatusOr<RgbImage> RawToRgbImage(int width, int height, RawPixelFormat format,
                                       absl::string_view data) {
  RgbImage image;
  image.width = width;
  image.height = height;
  try {
    image.pixels.resize(static_cast<size_t>(width) * height * 3);
    if (format == RawPixelFormat::kRgb8) {
      std::memcpy(image.pixels.data(), data.data(), image.pixels.size());
      return image;
    }
    const int code = format == RawPixelFormat::kBgr8    ? cv::COLOR_BGR2RGB
                     : format == RawPixelFormat::kGray8 ? cv::COLOR_GRAY2RGB
                                                        : cv::COLOR_RGBA2RGB;
    // cvtColor only reads `src`; the const_cast lets cv::Mat wrap the caller's bytes.
    const cv::Mat src(height, width, CV_MAKETYPE(CV_8U, Channels(format)),
                      const_cast<char*>(data.data()));
    cv::Mat dst(height, width, CV_8UC3, image.pixels.data());
    cv::cvtColor(src, dst, code);
    if (dst.data != image.pixels.data()) {
      return absl::InternalError("colour conversion did not write into the output buffer");
    }
  } catch (const cv::Exception&) {
    return absl::InternalError("raw pixel conversion failed");
  } catch (const std::bad_alloc&) {
    return WithReason(absl::ResourceExhaustedError("not enough memory to convert the image"),
                      kReasonOutOfMemory);
  }
  return image;
}

}  // namespace

ImageFormat SniffFormat(absl::string_view bytes) {
  if (absl::StartsWith(bytes, "\xFF\xD8\xFF")) return ImageFormat::kJpeg;
  if (absl::StartsWith(bytes, kPngSignature)) return ImageFormat::kPng;
  if (bytes.size() >= 12 && absl::StartsWith(bytes, "RIFF") && bytes.substr(8, 4) == "WEBP") {
    return ImageFormat::kWebp;
  }
  if (absl::StartsWith(bytes, "BM")) return ImageFormat::kBmp;
  if (absl::StartsWith(bytes, "GIF87a") || absl::StartsWith(bytes, "GIF89a")) {
    return ImageFormat::kGif;
  }
  if (absl::StartsWith(bytes, absl::string_view("II*\0", 4)) ||
      absl::StartsWith(bytes, absl::string_view("MM\0*", 4))) {
    return ImageFormat::kTiff;
  }
  return ImageFormat::kUnknown;
}

const char* FormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kJpeg:
      return "JPEG";
    case ImageFormat::kPng:
      return "PNG";
    case ImageFormat::kWebp:
      return "WebP";
    case ImageFormat::kBmp:
      return "BMP";
    case ImageFormat::kGif:
      return "GIF";
    case ImageFormat::kTiff:
      return "TIFF";
    case ImageFormat::kUnknown:
      break;
  }
  return "unknown";
}

absl::StatusOr<ImageSize> ReadImageSize(absl::string_view bytes, ImageFormat format) {
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty (0 bytes)");
  switch (format) {
    case ImageFormat::kJpeg:
      return internal::ReadJpegSize(bytes);
    case ImageFormat::kPng:
      return internal::ReadPngSize(bytes);
    case ImageFormat::kWebp:
      return internal::ReadWebpSize(bytes);
    case ImageFormat::kBmp:
      return internal::ReadBmpSize(bytes);
    case ImageFormat::kGif:
    case ImageFormat::kTiff:
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported image format ", FormatName(format), "; ", kSendAccepted));
    case ImageFormat::kUnknown:
      break;
  }
  return absl::InvalidArgumentError(absl::StrCat("unrecognised image format (first bytes ",
                                                 FirstBytesHex(bytes), "); ", kSendAccepted));
}

absl::StatusOr<ImageSize> CheckEncodedImage(absl::string_view bytes, const ImageLimits& limits) {
  if (bytes.empty()) return absl::InvalidArgumentError("image is empty (0 bytes)");
  RETURN_IF_ERROR(CheckByteCount(bytes.size(), limits));
  ASSIGN_OR_RETURN(const ImageSize size, ReadImageSize(bytes, SniffFormat(bytes)));
  RETURN_IF_ERROR(CheckDimensions(size.width, size.height, limits));
  return size;
}

absl::StatusOr<RgbImage> DecodeImage(absl::string_view bytes, const ImageLimits& limits) {
  ASSIGN_OR_RETURN(ReducedImage decoded, DecodeImageReduced(bytes, limits, 1));
  return std::move(decoded.image);
}

absl::StatusOr<ReducedImage> DecodeImageReduced(absl::string_view bytes, const ImageLimits& limits,
                                                int reduction) {
  if (reduction != 1 && reduction != 2 && reduction != 4 && reduction != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode reduction must be 1, 2, 4 or 8, got ", reduction));
  }
  ASSIGN_OR_RETURN(const ImageSize header, CheckEncodedImage(bytes, limits));
  const ImageFormat format = SniffFormat(bytes);
  if (format == ImageFormat::kJpeg) RETURN_IF_ERROR(internal::CheckJpegComplete(bytes));
  return DecodeWithOpenCv(bytes, format, header, limits,
                          format == ImageFormat::kJpeg ? reduction : 1);
}

absl::StatusOr<ReducedImage> DecodeImageFor(absl::string_view bytes, const ImageLimits& limits,
                                            const PreprocessOptions& options,
                                            const ModelGeometry& geometry) {
  int reduction = 1;
  if (options.decode == DecodeMode::kFast && SniffFormat(bytes) == ImageFormat::kJpeg) {
    ASSIGN_OR_RETURN(const ImageSize size, CheckEncodedImage(bytes, limits));
    ASSIGN_OR_RETURN(reduction, ChooseDecodeReduction(size.height, size.width, options, geometry));
  }
  return DecodeImageReduced(bytes, limits, reduction);
}

absl::Status CheckRawImage(int width, int height, RawPixelFormat format, size_t data_bytes,
                           const ImageLimits& limits) {
  if (width <= 0 || height <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw image size ", width, "x", height, " is not positive"));
  }
  RETURN_IF_ERROR(CheckDimensions(width, height, limits));
  RETURN_IF_ERROR(CheckByteCount(data_bytes, limits));
  const int channels = Channels(format);
  const int64_t expected = int64_t{width} * height * channels;
  if (static_cast<int64_t>(data_bytes) != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw ", RawFormatName(format), " data is ", data_bytes, " bytes, expected ",
                     width, "x", height, "x", channels, " = ", expected, " bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RgbImage> ConvertRawImage(int width, int height, RawPixelFormat format,
                                         absl::string_view data, const ImageLimits& limits) {
  RETURN_IF_ERROR(CheckRawImage(width, height, format, data.size(), limits));
  return RawToRgbImage(width, height, format, data);
}

}  // namespace dinov3::preprocess
