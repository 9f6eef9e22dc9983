// Tests of server/preprocess/image_decoder: decoding of images made by cv::imencode (pixel
// values and channel order), EXIF orientation, header size parsing, the limits (checked before
// decoding) and robustness against truncated or corrupted headers; raw pixel conversion.
#include "server/preprocess/image_decoder.h"

#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dinov3::preprocess {
namespace {

using ::testing::HasSubstr;

MATCHER_P(IsInvalidArgument, substr,
          "is InvalidArgument with a message containing \"" + std::string(substr) + "\"") {
  const absl::Status& status = arg.status();
  *result_listener << "status is " << status.ToString();
  return status.code() == absl::StatusCode::kInvalidArgument &&
         absl::StrContains(status.message(), substr);
}

std::string Encode(const std::string& ext, const cv::Mat& mat,
                   const std::vector<int>& params = {}) {
  std::vector<uchar> buffer;
  EXPECT_TRUE(cv::imencode(ext, mat, buffer, params)) << ext;
  return std::string(buffer.begin(), buffer.end());
}

// A BGR test pattern whose every pixel differs in all three channels.
cv::Mat Pattern(int width, int height) {
  cv::Mat mat(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      mat.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 7 % 256, y * 11 % 256, (x + 3 * y) % 256);
    }
  }
  return mat;
}

// Channel c (0 = R) of pixel (x, y).
int Px(const RgbImage& image, int x, int y, int c) {
  return image.pixels[(static_cast<size_t>(y) * image.width + x) * 3 + c];
}

// Every pixel of `image` is the BGR pixel of `bgr` with R and B swapped.
void ExpectExactRgbOf(const RgbImage& image, const cv::Mat& bgr) {
  ASSERT_EQ(image.width, bgr.cols);
  ASSERT_EQ(image.height, bgr.rows);
  ASSERT_EQ(image.pixels.size(), static_cast<size_t>(bgr.cols) * bgr.rows * 3);
  for (int y = 0; y < bgr.rows; ++y) {
    for (int x = 0; x < bgr.cols; ++x) {
      const cv::Vec3b p = bgr.at<cv::Vec3b>(y, x);
      ASSERT_EQ(Px(image, x, y, 0), p[2]) << x << "," << y;
      ASSERT_EQ(Px(image, x, y, 1), p[1]) << x << "," << y;
      ASSERT_EQ(Px(image, x, y, 2), p[0]) << x << "," << y;
    }
  }
}

cv::Mat PureRed(int width, int height) { return cv::Mat(height, width, CV_8UC3, {0, 0, 255}); }

void ExpectNearlyRed(const RgbImage& image) {
  ASSERT_FALSE(image.pixels.empty());
  EXPECT_GE(Px(image, image.width / 2, image.height / 2, 0), 240);
  EXPECT_LE(Px(image, image.width / 2, image.height / 2, 1), 15);
  EXPECT_LE(Px(image, image.width / 2, image.height / 2, 2), 15);
}

void PutBe32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>(v >> shift));
}
void PutLe(std::string& s, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}

// PNG signature and IHDR chunk only (no image data).
std::string PngHeader(uint32_t width, uint32_t height) {
  std::string png("\x89PNG\r\n\x1a\n", 8);
  PutBe32(png, 13);
  png += "IHDR";
  PutBe32(png, width);
  PutBe32(png, height);
  png += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, no interlace
  PutBe32(png, 0);                                // CRC (not checked by the header reader)
  return png;
}

// ---------------------------------------------------------------- sniffing and names

TEST(SniffFormatTest, RecognisesMagicBytes) {
  EXPECT_EQ(SniffFormat(Encode(".jpg", Pattern(16, 16))), ImageFormat::kJpeg);
  EXPECT_EQ(SniffFormat(Encode(".png", Pattern(16, 16))), ImageFormat::kPng);
  EXPECT_EQ(SniffFormat(Encode(".webp", Pattern(16, 16))), ImageFormat::kWebp);
  EXPECT_EQ(SniffFormat(Encode(".bmp", Pattern(16, 16))), ImageFormat::kBmp);
  EXPECT_EQ(SniffFormat("GIF87a...."), ImageFormat::kGif);
  EXPECT_EQ(SniffFormat("GIF89a...."), ImageFormat::kGif);
  EXPECT_EQ(SniffFormat(std::string("II*\0....", 8)), ImageFormat::kTiff);
  EXPECT_EQ(SniffFormat(std::string("MM\0*....", 8)), ImageFormat::kTiff);
  EXPECT_EQ(SniffFormat(""), ImageFormat::kUnknown);
  EXPECT_EQ(SniffFormat("\xFF\xD8"), ImageFormat::kUnknown);
  EXPECT_EQ(SniffFormat("RIFF\0\0\0\0WAVE"), ImageFormat::kUnknown);
  EXPECT_EQ(SniffFormat("GIF90a"), ImageFormat::kUnknown);
}

TEST(FormatNameTest, NamesEveryFormat) {
  EXPECT_STREQ(FormatName(ImageFormat::kJpeg), "JPEG");
  EXPECT_STREQ(FormatName(ImageFormat::kPng), "PNG");
  EXPECT_STREQ(FormatName(ImageFormat::kWebp), "WebP");
  EXPECT_STREQ(FormatName(ImageFormat::kBmp), "BMP");
  EXPECT_STREQ(FormatName(ImageFormat::kGif), "GIF");
  EXPECT_STREQ(FormatName(ImageFormat::kTiff), "TIFF");
  EXPECT_STREQ(FormatName(ImageFormat::kUnknown), "unknown");
}

// ---------------------------------------------------------------- decoding

TEST(DecodeImageTest, PngIsExactWithRgbChannelOrder) {
  const cv::Mat bgr = Pattern(37, 23);
  absl::StatusOr<RgbImage> image = DecodeImage(Encode(".png", bgr), ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  ExpectExactRgbOf(*image, bgr);
}

TEST(DecodeImageTest, PureRedPngIsRed) {
  absl::StatusOr<RgbImage> image = DecodeImage(Encode(".png", PureRed(9, 8)), ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(Px(*image, 4, 4, 0), 255);
  EXPECT_EQ(Px(*image, 4, 4, 1), 0);
  EXPECT_EQ(Px(*image, 4, 4, 2), 0);
}

TEST(DecodeImageTest, BmpIsExactWithRgbChannelOrder) {
  const cv::Mat bgr = Pattern(30, 17);  // odd row size: BMP rows are padded to 4 bytes
  absl::StatusOr<RgbImage> image = DecodeImage(Encode(".bmp", bgr), ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  ExpectExactRgbOf(*image, bgr);
}

TEST(DecodeImageTest, JpegHasSizeAndColour) {
  absl::StatusOr<RgbImage> image = DecodeImage(Encode(".jpg", PureRed(64, 40)), ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 64);
  EXPECT_EQ(image->height, 40);
  EXPECT_EQ(image->pixels.size(), 64u * 40 * 3);
  ExpectNearlyRed(*image);
}

TEST(DecodeImageTest, LossyWebpHasSizeAndColour) {
  const std::string webp = Encode(".webp", PureRed(50, 30), {cv::IMWRITE_WEBP_QUALITY, 90});
  ASSERT_EQ(webp.substr(12, 4), "VP8 ");
  absl::StatusOr<RgbImage> image = DecodeImage(webp, ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 50);
  EXPECT_EQ(image->height, 30);
  ExpectNearlyRed(*image);
}

TEST(DecodeImageTest, LosslessWebpIsExact) {
  const cv::Mat bgr = Pattern(21, 12);
  const std::string webp = Encode(".webp", bgr, {cv::IMWRITE_WEBP_QUALITY, 101});
  ASSERT_EQ(webp.substr(12, 4), "VP8L");
  absl::StatusOr<RgbImage> image = DecodeImage(webp, ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  ExpectExactRgbOf(*image, bgr);
}

TEST(DecodeImageTest, GrayscalePngBecomesThreeEqualChannels) {
  cv::Mat gray(10, 12, CV_8UC1);
  for (int y = 0; y < gray.rows; ++y) {
    for (int x = 0; x < gray.cols; ++x) gray.at<uint8_t>(y, x) = static_cast<uint8_t>(x * 20 + y);
  }
  absl::StatusOr<RgbImage> image = DecodeImage(Encode(".png", gray), ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->width, 12);
  ASSERT_EQ(image->height, 10);
  for (int y = 0; y < gray.rows; ++y) {
    for (int x = 0; x < gray.cols; ++x) {
      for (int c = 0; c < 3; ++c) ASSERT_EQ(Px(*image, x, y, c), gray.at<uint8_t>(y, x));
    }
  }
}

TEST(DecodeImageTest, RgbaPngDropsAlpha) {
  cv::Mat bgra(9, 11, CV_8UC4, {30, 60, 200, 0});  // fully transparent: must not become black
  bgra.at<cv::Vec4b>(2, 3) = cv::Vec4b(1, 2, 3, 128);
  absl::StatusOr<RgbImage> image = DecodeImage(Encode(".png", bgra), ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_EQ(image->pixels.size(), 9u * 11 * 3);
  EXPECT_EQ(Px(*image, 0, 0, 0), 200);
  EXPECT_EQ(Px(*image, 0, 0, 1), 60);
  EXPECT_EQ(Px(*image, 0, 0, 2), 30);
  EXPECT_EQ(Px(*image, 3, 2, 0), 3);
  EXPECT_EQ(Px(*image, 3, 2, 1), 2);
  EXPECT_EQ(Px(*image, 3, 2, 2), 1);
}

TEST(DecodeImageTest, SixteenBitPngIsScaledToEightBit) {
  cv::Mat bgr16(8, 8, CV_16UC3, {0, 0x8080, 0xFFFF});  // B, G, R
  bgr16.at<cv::Vec3w>(1, 1) = cv::Vec3w(0x1234, 0xABCD, 0x00FF);
  absl::StatusOr<RgbImage> image = DecodeImage(Encode(".png", bgr16), ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(Px(*image, 0, 0, 0), 255);
  EXPECT_EQ(Px(*image, 0, 0, 1), 128);
  EXPECT_EQ(Px(*image, 0, 0, 2), 0);
  EXPECT_NEAR(Px(*image, 1, 1, 0), 0x00FF / 257.0, 1);
  EXPECT_NEAR(Px(*image, 1, 1, 1), 0xABCD / 257.0, 1);
  EXPECT_NEAR(Px(*image, 1, 1, 2), 0x1234 / 257.0, 1);
}

// APP1 segment with a little-endian TIFF IFD holding one entry: Orientation (0x0112) = value.
std::string ExifOrientationSegment(uint16_t orientation) {
  std::string tiff("II*\0", 4);
  PutLe(tiff, 8, 4);            // offset of IFD0
  PutLe(tiff, 1, 2);            // one entry
  PutLe(tiff, 0x0112, 2);       // Orientation
  PutLe(tiff, 3, 2);            // SHORT
  PutLe(tiff, 1, 4);            // count
  PutLe(tiff, orientation, 4);  // value, left-justified
  PutLe(tiff, 0, 4);            // no next IFD
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  std::string segment("\xFF\xE1", 2);
  const size_t length = payload.size() + 2;
  segment.push_back(static_cast<char>(length >> 8));
  segment.push_back(static_cast<char>(length & 0xFF));
  return segment + payload;
}

TEST(DecodeImageTest, AppliesExifOrientation) {
  // 40x20, left half red, right half blue.
  cv::Mat bgr(20, 40, CV_8UC3, {255, 0, 0});
  bgr(cv::Rect(0, 0, 20, 20)).setTo(cv::Scalar(0, 0, 255));
  const std::string jpeg = Encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 95});

  absl::StatusOr<RgbImage> plain = DecodeImage(jpeg, ImageLimits{});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->width, 40);
  EXPECT_EQ(plain->height, 20);

  // Orientation 6: the stored image must be rotated 90 degrees clockwise for display, so the
  // left (red) half ends up on top.
  const std::string rotated = jpeg.substr(0, 2) + ExifOrientationSegment(6) + jpeg.substr(2);
  absl::StatusOr<ImageSize> header = ReadImageSize(rotated, ImageFormat::kJpeg);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->width, 40);  // the header does not know about EXIF
  absl::StatusOr<RgbImage> image = DecodeImage(rotated, ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 20);
  EXPECT_EQ(image->height, 40);
  EXPECT_GE(Px(*image, 10, 5, 0), 200);  // top: red
  EXPECT_LE(Px(*image, 10, 5, 2), 60);
  EXPECT_LE(Px(*image, 10, 34, 0), 60);  // bottom: blue
  EXPECT_GE(Px(*image, 10, 34, 2), 200);
}

// ---------------------------------------------------------------- rejections

TEST(DecodeImageTest, RejectsEmpty) {
  EXPECT_THAT(DecodeImage("", ImageLimits{}), IsInvalidArgument("image is empty (0 bytes)"));
}

TEST(DecodeImageTest, RejectsRandomBytes) {
  std::mt19937 rng(42);
  std::string bytes(500, '\0');
  for (char& b : bytes) b = static_cast<char>(rng());
  bytes[0] = '\x00';
  bytes[1] = '\x01';
  const auto result = DecodeImage(bytes, ImageLimits{});
  EXPECT_THAT(result, IsInvalidArgument("unrecognised image format (first bytes 00 01 "));
  EXPECT_THAT(result, IsInvalidArgument("; send JPEG, PNG, WebP or BMP"));
}

TEST(DecodeImageTest, RejectsTruncatedJpegHeader) {
  const std::string jpeg = Encode(".jpg", Pattern(64, 64));
  EXPECT_THAT(DecodeImage(jpeg.substr(0, 100), ImageLimits{}),
              IsInvalidArgument("truncated JPEG header"));
}

TEST(DecodeImageTest, RejectsPixelBombFromHeaderWithoutDecoding) {
  // Only the header exists: a decoder would fail, so the message proves the pre-check.
  EXPECT_THAT(DecodeImage(PngHeader(100000, 100000), ImageLimits{}),
              IsInvalidArgument("image is 100000x100000 = 10000000000 pixels, above the limit of "
                                "40000000 (max_pixels)"));
}

TEST(DecodeImageTest, RejectsHeaderOnlyPngWithinLimitsAsUndecodable) {
  EXPECT_THAT(DecodeImage(PngHeader(100, 100), ImageLimits{}),
              IsInvalidArgument("could not decode PNG data (corrupt or truncated)"));
}

TEST(DecodeImageTest, RejectsGifAndTiffByName) {
  EXPECT_THAT(DecodeImage("GIF89a\x10\0\x10\0\0\0\0", ImageLimits{}),
              IsInvalidArgument("unsupported image format GIF; send JPEG, PNG, WebP or BMP"));
  EXPECT_THAT(DecodeImage(std::string("II*\0\x08\0\0\0", 8), ImageLimits{}),
              IsInvalidArgument("unsupported image format TIFF; send JPEG, PNG, WebP or BMP"));
  EXPECT_THAT(DecodeImage(std::string("MM\0*\0\0\0\x08", 8), ImageLimits{}),
              IsInvalidArgument("unsupported image format TIFF"));
}

TEST(DecodeImageTest, RejectsTooManyBytes) {
  const std::string png = Encode(".png", Pattern(32, 32));
  ImageLimits limits;
  limits.max_image_bytes = 100;
  EXPECT_THAT(DecodeImage(png, limits),
              IsInvalidArgument(std::to_string(png.size()) +
                                " bytes, above the limit of 100 bytes (max_image_bytes)"));
  limits.max_image_bytes = static_cast<int64_t>(png.size());
  EXPECT_TRUE(DecodeImage(png, limits).ok());
}

TEST(DecodeImageTest, RejectsSmallerThanMinSide) {
  EXPECT_THAT(
      DecodeImage(Encode(".png", Pattern(4, 4)), ImageLimits{}),
      IsInvalidArgument("image is 4x4, below the minimum side of 8 pixels (min_image_side)"));
  EXPECT_THAT(DecodeImage(Encode(".jpg", Pattern(100, 7)), ImageLimits{}),
              IsInvalidArgument("image is 100x7, below the minimum side of 8"));
  ImageLimits limits;
  limits.min_image_side = 4;
  EXPECT_TRUE(DecodeImage(Encode(".png", Pattern(4, 4)), limits).ok());
}

TEST(DecodeImageTest, RejectsAboveMaxPixelsAtTheBoundary) {
  ImageLimits limits;
  limits.max_pixels = 20 * 10 - 1;
  EXPECT_THAT(
      DecodeImage(Encode(".bmp", Pattern(20, 10)), limits),
      IsInvalidArgument("image is 20x10 = 200 pixels, above the limit of 199 (max_pixels)"));
  limits.max_pixels = 200;
  EXPECT_TRUE(DecodeImage(Encode(".bmp", Pattern(20, 10)), limits).ok());
}

// ---------------------------------------------------------------- reduced (fast) decode

TEST(DecodeImageReducedTest, JpegDecodesAtEveryScaleWithCeilSides) {
  const std::string jpeg = Encode(".jpg", Pattern(203, 101), {cv::IMWRITE_JPEG_QUALITY, 95});
  for (const int reduction : {1, 2, 4, 8}) {
    absl::StatusOr<ReducedImage> decoded = DecodeImageReduced(jpeg, ImageLimits{}, reduction);
    ASSERT_TRUE(decoded.ok()) << reduction << ": " << decoded.status();
    EXPECT_EQ(decoded->image.width, (203 + reduction - 1) / reduction) << reduction;
    EXPECT_EQ(decoded->image.height, (101 + reduction - 1) / reduction) << reduction;
    EXPECT_EQ(decoded->image.pixels.size(),
              static_cast<size_t>(decoded->image.width) * decoded->image.height * 3);
    EXPECT_EQ(decoded->full_size.width, 203);
    EXPECT_EQ(decoded->full_size.height, 101);
  }
  absl::StatusOr<ReducedImage> full = DecodeImageReduced(jpeg, ImageLimits{}, 1);
  absl::StatusOr<RgbImage> exact = DecodeImage(jpeg, ImageLimits{});
  ASSERT_TRUE(full.ok() && exact.ok());
  EXPECT_EQ(full->image.pixels, exact->pixels);  // reduction 1 is the exact decode
}

TEST(DecodeImageReducedTest, ReducedJpegAppliesExifOrientation) {
  cv::Mat bgr(20, 40, CV_8UC3, {255, 0, 0});  // 40x20: left half red, right half blue
  bgr(cv::Rect(0, 0, 20, 20)).setTo(cv::Scalar(0, 0, 255));
  const std::string jpeg = Encode(".jpg", bgr, {cv::IMWRITE_JPEG_QUALITY, 95});
  const std::string rotated = jpeg.substr(0, 2) + ExifOrientationSegment(6) + jpeg.substr(2);
  absl::StatusOr<ReducedImage> decoded = DecodeImageReduced(rotated, ImageLimits{}, 2);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->image.width, 10);
  EXPECT_EQ(decoded->image.height, 20);
  EXPECT_EQ(decoded->full_size.width, 20);  // the full-size image as displayed
  EXPECT_EQ(decoded->full_size.height, 40);
  EXPECT_GE(Px(decoded->image, 5, 2, 0), 200);   // top: red
  EXPECT_GE(Px(decoded->image, 5, 17, 2), 200);  // bottom: blue
}

TEST(DecodeImageReducedTest, OtherFormatsDecodeAtFullSize) {
  const cv::Mat pattern = Pattern(64, 48);
  for (const std::string ext : {".png", ".bmp"}) {
    absl::StatusOr<ReducedImage> decoded = DecodeImageReduced(Encode(ext, pattern), {}, 8);
    ASSERT_TRUE(decoded.ok()) << ext << ": " << decoded.status();
    ExpectExactRgbOf(decoded->image, pattern);
    EXPECT_EQ(decoded->full_size.width, 64);
  }
}

TEST(DecodeImageReducedTest, RejectsAReductionLibjpegDoesNotHave) {
  const std::string jpeg = Encode(".jpg", Pattern(64, 64));
  EXPECT_THAT(DecodeImageReduced(jpeg, ImageLimits{}, 3),
              IsInvalidArgument("decode reduction must be 1, 2, 4 or 8, got 3"));
}

TEST(DecodeImageReducedTest, TheLimitsHoldAsForAFullDecode) {
  // Bombs are refused from the header, before any decoder runs, whatever the scale.
  EXPECT_THAT(DecodeImageReduced(PngHeader(100000, 100000), ImageLimits{}, 8),
              IsInvalidArgument("above the limit of 40000000 (max_pixels)"));
  const std::string jpeg = Encode(".jpg", Pattern(64, 64));
  EXPECT_THAT(DecodeImageReduced(jpeg.substr(0, 100), ImageLimits{}, 8),
              IsInvalidArgument("truncated JPEG header"));
  // A JPEG cut off in its scan data is as truncated at 1/8 scale as at full size.
  const std::string cut = jpeg.substr(0, jpeg.size() - 200);
  const absl::StatusOr<RgbImage> full = DecodeImage(cut, ImageLimits{});
  ASSERT_FALSE(full.ok());
  EXPECT_THAT(DecodeImageReduced(cut, ImageLimits{}, 8),
              IsInvalidArgument(full.status().message()));
  // max_pixels counts the full-size image, not the reduced one.
  ImageLimits limits;
  limits.max_pixels = 64 * 64 - 1;
  EXPECT_THAT(DecodeImageReduced(jpeg, limits, 8), IsInvalidArgument("(max_pixels)"));
}

// ---------------------------------------------------------------- raw pixels

ImageLimits TinyLimits() {
  ImageLimits limits;
  limits.min_image_side = 1;
  return limits;
}

TEST(ConvertRawImageTest, Rgb8IsCopied) {
  const std::string data = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
  absl::StatusOr<RgbImage> image = ConvertRawImage(3, 2, RawPixelFormat::kRgb8, data, TinyLimits());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->width, 3);
  EXPECT_EQ(image->height, 2);
  EXPECT_EQ(image->pixels, std::vector<uint8_t>(data.begin(), data.end()));
}

TEST(ConvertRawImageTest, Bgr8IsSwapped) {
  const std::string data = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  absl::StatusOr<RgbImage> image = ConvertRawImage(2, 2, RawPixelFormat::kBgr8, data, TinyLimits());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->pixels, (std::vector<uint8_t>{3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}));
}

TEST(ConvertRawImageTest, Gray8IsReplicated) {
  const std::string data = {0, 7, static_cast<char>(200), static_cast<char>(255)};
  absl::StatusOr<RgbImage> image =
      ConvertRawImage(2, 2, RawPixelFormat::kGray8, data, TinyLimits());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->pixels, (std::vector<uint8_t>{0, 0, 0, 7, 7, 7, 200, 200, 200, 255, 255, 255}));
}

TEST(ConvertRawImageTest, Rgba8DropsAlpha) {
  const std::string data = {1, 2, 3, 0, 4, 5, 6, 127, 7, 8, 9, static_cast<char>(255)};
  absl::StatusOr<RgbImage> image =
      ConvertRawImage(3, 1, RawPixelFormat::kRgba8, data, TinyLimits());
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->pixels, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(ConvertRawImageTest, LargeBgrMatchesPerPixelSwap) {
  const cv::Mat bgr = Pattern(123, 45);  // continuous, 3 bytes per pixel
  const std::string data(reinterpret_cast<const char*>(bgr.data), bgr.total() * 3);
  absl::StatusOr<RgbImage> image = ConvertRawImage(123, 45, RawPixelFormat::kBgr8, data, {});
  ASSERT_TRUE(image.ok()) << image.status();
  ExpectExactRgbOf(*image, bgr);
}

TEST(ConvertRawImageTest, RejectsWrongDataLength) {
  EXPECT_THAT(ConvertRawImage(8, 8, RawPixelFormat::kRgb8, std::string(100, 'x'), {}),
              IsInvalidArgument("raw RGB8 data is 100 bytes, expected 8x8x3 = 192 bytes"));
  EXPECT_THAT(ConvertRawImage(8, 8, RawPixelFormat::kRgba8, std::string(193, 'x'), {}),
              IsInvalidArgument("raw RGBA8 data is 193 bytes, expected 8x8x4 = 256 bytes"));
  EXPECT_THAT(ConvertRawImage(8, 8, RawPixelFormat::kGray8, std::string(192, 'x'), {}),
              IsInvalidArgument("raw GRAY8 data is 192 bytes, expected 8x8x1 = 64 bytes"));
  EXPECT_THAT(ConvertRawImage(8, 9, RawPixelFormat::kBgr8, "", {}),
              IsInvalidArgument("raw BGR8 data is 0 bytes, expected 8x9x3 = 216 bytes"));
}

TEST(ConvertRawImageTest, RejectsBadSizesAndLimits) {
  EXPECT_THAT(ConvertRawImage(0, 8, RawPixelFormat::kRgb8, "", {}),
              IsInvalidArgument("raw image size 0x8 is not positive"));
  EXPECT_THAT(ConvertRawImage(8, -1, RawPixelFormat::kRgb8, "", {}),
              IsInvalidArgument("raw image size 8x-1 is not positive"));
  EXPECT_THAT(ConvertRawImage(4, 8, RawPixelFormat::kGray8, std::string(32, 'x'), {}),
              IsInvalidArgument("image is 4x8, below the minimum side of 8 pixels"));
  // The pixel limit is checked before the length: no giant buffer is needed to be refused.
  EXPECT_THAT(ConvertRawImage(100000, 100000, RawPixelFormat::kRgb8, "", {}),
              IsInvalidArgument("image is 100000x100000 = 10000000000 pixels, above the limit of "
                                "40000000 (max_pixels)"));
  ImageLimits limits;
  limits.max_image_bytes = 191;
  EXPECT_THAT(ConvertRawImage(8, 8, RawPixelFormat::kRgb8, std::string(192, 'x'), limits),
              IsInvalidArgument("image is 192 bytes, above the limit of 191 bytes"));
}

}  // namespace
}  // namespace dinov3::preprocess
