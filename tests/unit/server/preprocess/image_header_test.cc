// Tests of ReadImageSize (server/preprocess/image_decoder.h, parsed in image_header.cc): sizes
// of real and hand-built headers of every supported format, malformed headers, and that every
// prefix or single-byte corruption of a valid file gives a status (never a crash or a wrong size).
#include <cstdint>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/preprocess/image_decoder.h"

namespace dinov3::preprocess {
namespace {

MATCHER_P(IsInvalidArgument, substr,
          "is InvalidArgument with a message containing \"" + std::string(substr) + "\"") {
  const absl::Status& status = arg.status();
  *result_listener << "status is " << status.ToString();
  return status.code() == absl::StatusCode::kInvalidArgument &&
         absl::StrContains(status.message(), substr);
}

MATCHER_P2(IsSize, width, height, "") {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status().ToString();
    return false;
  }
  *result_listener << "size is " << arg->width << "x" << arg->height;
  return arg->width == width && arg->height == height;
}

// cv::imencode writes lossless WebP (VP8L) by default and lossy (VP8) at quality <= 100.
const std::vector<int> kLossy = {cv::IMWRITE_WEBP_QUALITY, 80};

std::string Encode(const std::string& ext, int width, int height,
                   const std::vector<int>& params = {}) {
  cv::Mat mat(height, width, CV_8UC3);
  cv::randu(mat, 0, 256);
  std::vector<uchar> buffer;
  EXPECT_TRUE(cv::imencode(ext, mat, buffer, params)) << ext;
  return std::string(buffer.begin(), buffer.end());
}

void PutLe(std::string& s, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>(v >> (8 * i)));
}
void PutBe(std::string& s, uint32_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}

std::string JpegSegment(uint8_t marker, const std::string& payload) {
  std::string segment{'\xFF', static_cast<char>(marker)};
  PutBe(segment, payload.size() + 2, 2);
  return segment + payload;
}

// SOF payload: precision 8, height, width, one component.
std::string SofPayload(uint32_t width, uint32_t height) {
  std::string payload(1, '\x08');
  PutBe(payload, height, 2);
  PutBe(payload, width, 2);
  return payload + std::string("\x01\x01\x11\x00", 4);
}

std::string Vp8xWebp(uint32_t width, uint32_t height) {
  std::string webp = "RIFF";
  PutLe(webp, 4 + 18, 4);
  webp += "WEBPVP8X";
  PutLe(webp, 10, 4);
  PutLe(webp, 0, 4);  // flags + reserved
  PutLe(webp, width - 1, 3);
  PutLe(webp, height - 1, 3);
  return webp;
}

// File header + an info header of `info_size` bytes (only the fields the reader needs).
std::string Bmp(uint32_t info_size, int32_t width, int32_t height) {
  std::string bmp = "BM";
  bmp.append(12, '\0');  // file size, reserved, pixel offset
  PutLe(bmp, info_size, 4);
  if (info_size == 12) {
    PutLe(bmp, width, 2);
    PutLe(bmp, height, 2);
  } else {
    PutLe(bmp, width, 4);
    PutLe(bmp, static_cast<uint32_t>(height), 4);
  }
  PutLe(bmp, 0x00180001, 4);  // planes 1, 24 bits
  return bmp;
}

TEST(ReadImageSizeTest, ReadsEncodedImages) {
  EXPECT_THAT(ReadImageSize(Encode(".png", 37, 23), ImageFormat::kPng), IsSize(37, 23));
  EXPECT_THAT(ReadImageSize(Encode(".jpg", 37, 23), ImageFormat::kJpeg), IsSize(37, 23));
  EXPECT_THAT(
      ReadImageSize(Encode(".jpg", 37, 23, {cv::IMWRITE_JPEG_PROGRESSIVE, 1}), ImageFormat::kJpeg),
      IsSize(37, 23));
  EXPECT_THAT(ReadImageSize(Encode(".webp", 37, 23, kLossy), ImageFormat::kWebp), IsSize(37, 23));
  EXPECT_THAT(
      ReadImageSize(Encode(".webp", 37, 23, {cv::IMWRITE_WEBP_QUALITY, 101}), ImageFormat::kWebp),
      IsSize(37, 23));
  EXPECT_THAT(ReadImageSize(Encode(".bmp", 37, 23), ImageFormat::kBmp), IsSize(37, 23));
}

TEST(ReadImageSizeTest, JpegSkipsFillBytesStandaloneMarkersAndNonFrameSegments) {
  std::string jpeg = "\xFF\xD8";
  jpeg += "\xFF\xFF\xFF" + JpegSegment(0xE0, "JFIF").substr(1);  // fill bytes before APP0
  jpeg += "\xFF\xD0";                                            // RST0 (standalone)
  jpeg += "\xFF\x01";                                            // TEM (standalone)
  jpeg += JpegSegment(0xC4, SofPayload(1, 1));                   // DHT: not a frame
  jpeg += JpegSegment(0xC8, SofPayload(2, 2));                   // JPG: not a frame
  jpeg += JpegSegment(0xCC, SofPayload(3, 3));                   // DAC: not a frame
  jpeg += JpegSegment(0xC2, SofPayload(640, 480));               // progressive frame
  EXPECT_THAT(ReadImageSize(jpeg, ImageFormat::kJpeg), IsSize(640, 480));
  const std::string lossless = "\xFF\xD8" + JpegSegment(0xCF, SofPayload(65535, 9));
  EXPECT_THAT(ReadImageSize(lossless, ImageFormat::kJpeg), IsSize(65535, 9));
}

TEST(ReadImageSizeTest, RejectsMalformedJpeg) {
  EXPECT_THAT(ReadImageSize("\xFF\xD8\xFF\xDA\x00\x02", ImageFormat::kJpeg),
              IsInvalidArgument("malformed JPEG header (no frame header"));
  EXPECT_THAT(ReadImageSize("\xFF\xD8\xFF\xD9", ImageFormat::kJpeg),
              IsInvalidArgument("malformed JPEG header"));
  EXPECT_THAT(ReadImageSize("\xFF\xD8\x12\x34", ImageFormat::kJpeg),
              IsInvalidArgument("malformed JPEG header (expected a marker at byte 2)"));
  EXPECT_THAT(ReadImageSize(std::string("\xFF\xD8\xFF\xE0\x00\x01", 6), ImageFormat::kJpeg),
              IsInvalidArgument("segment length below 2"));
  EXPECT_THAT(ReadImageSize("\xFF\xD8" + JpegSegment(0xC0, SofPayload(10, 0)), ImageFormat::kJpeg),
              IsInvalidArgument("DNL"));
  EXPECT_THAT(ReadImageSize("\xFF\xD8" + JpegSegment(0xC0, SofPayload(0, 10)), ImageFormat::kJpeg),
              IsInvalidArgument("malformed JPEG header"));
  // A segment length pointing far past the end is truncation, not an out-of-bounds read.
  EXPECT_THAT(ReadImageSize("\xFF\xD8\xFF\xE1\xFF\xFF", ImageFormat::kJpeg),
              IsInvalidArgument("truncated JPEG header"));
  EXPECT_THAT(ReadImageSize("\x89PNG", ImageFormat::kJpeg), IsInvalidArgument("no SOI marker"));
}

TEST(ReadImageSizeTest, ReadsHandBuiltWebpVp8x) {
  EXPECT_THAT(ReadImageSize(Vp8xWebp(3000, 2000), ImageFormat::kWebp), IsSize(3000, 2000));
  EXPECT_THAT(ReadImageSize(Vp8xWebp(1 << 24, 1 << 24), ImageFormat::kWebp),
              IsSize(1 << 24, 1 << 24));
  EXPECT_THAT(DecodeImage(Vp8xWebp(1 << 24, 1 << 24), ImageLimits{}),
              IsInvalidArgument("image is 16777216x16777216 = 281474976710656 pixels"));
}

TEST(ReadImageSizeTest, RejectsMalformedWebp) {
  std::string webp = Vp8xWebp(10, 10);
  webp.replace(12, 4, "ALPH");
  EXPECT_THAT(ReadImageSize(webp, ImageFormat::kWebp),
              IsInvalidArgument("malformed WebP header (unexpected first chunk \"ALPH\")"));
  std::string lossy = Encode(".webp", 16, 16, kLossy);
  lossy[23] = '\x00';  // start code
  EXPECT_THAT(ReadImageSize(lossy, ImageFormat::kWebp), IsInvalidArgument("bad VP8 start code"));
  std::string lossless = Encode(".webp", 16, 16, {cv::IMWRITE_WEBP_QUALITY, 101});
  lossless[20] = '\x00';  // signature
  EXPECT_THAT(ReadImageSize(lossless, ImageFormat::kWebp), IsInvalidArgument("bad VP8L signature"));
}

TEST(ReadImageSizeTest, ReadsBmpInfoAndCoreHeaders) {
  EXPECT_THAT(ReadImageSize(Bmp(40, 640, 480), ImageFormat::kBmp), IsSize(640, 480));
  EXPECT_THAT(ReadImageSize(Bmp(40, 640, -480), ImageFormat::kBmp), IsSize(640, 480));
  EXPECT_THAT(ReadImageSize(Bmp(124, 17, -3), ImageFormat::kBmp), IsSize(17, 3));
  EXPECT_THAT(ReadImageSize(Bmp(12, 300, 200), ImageFormat::kBmp), IsSize(300, 200));
  EXPECT_THAT(ReadImageSize(Bmp(40, -5, 5), ImageFormat::kBmp),
              IsInvalidArgument("malformed BMP header"));
  EXPECT_THAT(ReadImageSize(Bmp(40, 5, INT32_MIN), ImageFormat::kBmp),
              IsInvalidArgument("malformed BMP header"));
  EXPECT_THAT(ReadImageSize(Bmp(13, 5, 5), ImageFormat::kBmp),
              IsInvalidArgument("unknown info header size 13"));
}

TEST(ReadImageSizeTest, DecodesTopDownBmp) {
  // Rewrite a bottom-up 24-bit BMP as top-down: negate the height and reverse the rows.
  cv::Mat bgr(9, 8, CV_8UC3, {0, 0, 0});
  bgr.row(0).setTo(cv::Scalar(0, 0, 255));  // top row red
  std::vector<uchar> buffer;
  ASSERT_TRUE(cv::imencode(".bmp", bgr, buffer));
  std::string bmp(buffer.begin(), buffer.end());
  const uint32_t offset = static_cast<uint8_t>(bmp[10]) | static_cast<uint8_t>(bmp[11]) << 8;
  const size_t stride = 8 * 3;  // already a multiple of 4
  std::string rows;
  for (int r = 8; r >= 0; --r) rows += bmp.substr(offset + r * stride, stride);
  bmp.replace(offset, rows.size(), rows);
  std::string height;
  PutLe(height, static_cast<uint32_t>(-9), 4);
  bmp.replace(22, 4, height);
  EXPECT_THAT(ReadImageSize(bmp, ImageFormat::kBmp), IsSize(8, 9));
  absl::StatusOr<RgbImage> image = DecodeImage(bmp, ImageLimits{});
  ASSERT_TRUE(image.ok()) << image.status();
  EXPECT_EQ(image->pixels[0], 255);        // top-left R
  EXPECT_EQ(image->pixels[2], 0);          // top-left B
  EXPECT_EQ(image->pixels[8 * 3 * 8], 0);  // bottom-left R
}

TEST(ReadImageSizeTest, RejectsMalformedPng) {
  std::string png = Encode(".png", 16, 16);
  png[12] = 'X';
  EXPECT_THAT(ReadImageSize(png, ImageFormat::kPng),
              IsInvalidArgument("malformed PNG header (the first chunk is not a 13-byte IHDR)"));
  png = Encode(".png", 16, 16);
  png[16] = '\x80';  // width >= 2^31
  EXPECT_THAT(ReadImageSize(png, ImageFormat::kPng), IsInvalidArgument("malformed PNG header"));
  EXPECT_THAT(ReadImageSize("\xFF\xD8\xFF\xE0 not a png at all", ImageFormat::kPng),
              IsInvalidArgument("malformed PNG header (bad signature)"));
}

TEST(ReadImageSizeTest, NamesTheTruncatedFormat) {
  EXPECT_THAT(ReadImageSize(Encode(".png", 16, 16).substr(0, 20), ImageFormat::kPng),
              IsInvalidArgument("truncated PNG header"));
  EXPECT_THAT(ReadImageSize(Encode(".webp", 16, 16, kLossy).substr(0, 29), ImageFormat::kWebp),
              IsInvalidArgument("truncated WebP header"));
  EXPECT_THAT(ReadImageSize(Encode(".webp", 16, 16).substr(0, 24), ImageFormat::kWebp),
              IsInvalidArgument("truncated WebP header"));
  EXPECT_THAT(ReadImageSize(Encode(".bmp", 16, 16).substr(0, 20), ImageFormat::kBmp),
              IsInvalidArgument("truncated BMP header"));
  EXPECT_THAT(ReadImageSize("", ImageFormat::kJpeg), IsInvalidArgument("image is empty"));
}

// Every prefix must give a status; a successful header read must give the true size, and a
// successful decode must give an image of the true size.
void CheckAllPrefixes(const std::string& file, int width, int height) {
  const ImageFormat format = SniffFormat(file);
  ASSERT_NE(format, ImageFormat::kUnknown);
  for (size_t length = 0; length <= file.size(); ++length) {
    const std::string prefix = file.substr(0, length);
    const absl::StatusOr<ImageSize> size = ReadImageSize(prefix, SniffFormat(prefix));
    if (size.ok()) {
      ASSERT_EQ(size->width, width) << length;
      ASSERT_EQ(size->height, height) << length;
    } else {
      ASSERT_EQ(size.status().code(), absl::StatusCode::kInvalidArgument) << length;
    }
    const absl::StatusOr<RgbImage> image = DecodeImage(prefix, ImageLimits{});
    if (image.ok()) {
      ASSERT_EQ(image->width, width) << length;
      ASSERT_EQ(image->pixels.size(), static_cast<size_t>(width) * height * 3) << length;
    } else {
      ASSERT_EQ(image.status().code(), absl::StatusCode::kInvalidArgument) << length;
    }
  }
  EXPECT_THAT(ReadImageSize(file, format), IsSize(width, height));
}

TEST(ReadImageSizeTest, EveryPrefixGivesAStatus) {
  CheckAllPrefixes(Encode(".jpg", 24, 16), 24, 16);
  CheckAllPrefixes(Encode(".png", 24, 16), 24, 16);
  CheckAllPrefixes(Encode(".webp", 24, 16, kLossy), 24, 16);
  CheckAllPrefixes(Encode(".webp", 24, 16, {cv::IMWRITE_WEBP_QUALITY, 101}), 24, 16);
  CheckAllPrefixes(Encode(".bmp", 24, 16), 24, 16);
}

// Each of the first bytes set to 0x00, 0xFF or flipped: statuses only, no crash.
TEST(ReadImageSizeTest, CorruptedHeadersGiveAStatus) {
  for (const std::string& file :
       {Encode(".jpg", 24, 16), Encode(".png", 24, 16), Encode(".webp", 24, 16, kLossy),
        Encode(".webp", 24, 16), Encode(".bmp", 24, 16)}) {
    for (size_t i = 0; i < 64 && i < file.size(); ++i) {
      for (const char value : {'\x00', '\xFF', static_cast<char>(~file[i])}) {
        std::string corrupt = file;
        corrupt[i] = value;
        const absl::StatusOr<ImageSize> size = ReadImageSize(corrupt, SniffFormat(corrupt));
        EXPECT_TRUE(size.ok() || size.status().code() == absl::StatusCode::kInvalidArgument);
        const absl::StatusOr<RgbImage> image = DecodeImage(corrupt, ImageLimits{});
        EXPECT_TRUE(image.ok() || image.status().code() == absl::StatusCode::kInvalidArgument)
            << image.status();
      }
    }
  }
}

}  // namespace
}  // namespace dinov3::preprocess
