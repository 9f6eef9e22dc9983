// Header-only size readers for PNG, JPEG, WebP and BMP. Every access goes through Has() first.
#include "server/preprocess/image_header.h"

#include <cstddef>
#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace dinov3::preprocess::internal {
namespace {

// True when [offset, offset + n) lies inside `bytes` (no overflow for any offset).
bool Has(absl::string_view bytes, size_t offset, size_t n) {
  return offset <= bytes.size() && n <= bytes.size() - offset;
}

// Unchecked readers: callers have checked Has() for the bytes read.
uint32_t U8(absl::string_view bytes, size_t offset) { return static_cast<uint8_t>(bytes[offset]); }
uint32_t Be16(absl::string_view bytes, size_t offset) {
  return U8(bytes, offset) << 8 | U8(bytes, offset + 1);
}
uint32_t Be32(absl::string_view bytes, size_t offset) {
  return Be16(bytes, offset) << 16 | Be16(bytes, offset + 2);
}
uint32_t Le16(absl::string_view bytes, size_t offset) {
  return U8(bytes, offset) | U8(bytes, offset + 1) << 8;
}
uint32_t Le24(absl::string_view bytes, size_t offset) {
  return Le16(bytes, offset) | U8(bytes, offset + 2) << 16;
}
uint32_t Le32(absl::string_view bytes, size_t offset) {
  return Le16(bytes, offset) | Le16(bytes, offset + 2) << 16;
}

absl::Status Truncated(absl::string_view format) {
  return absl::InvalidArgumentError(absl::StrCat("truncated ", format, " header"));
}

absl::Status Malformed(absl::string_view format, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("malformed ", format, " header (", why, ")"));
}

// Both sides in [1, INT_MAX], or InvalidArgument.
absl::StatusOr<ImageSize> CheckSides(absl::string_view format, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0) {
    return Malformed(format, absl::StrCat("width ", width, ", height ", height));
  }
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  if (width > kMax || height > kMax) {
    return Malformed(format, absl::StrCat("side above ", kMax, " pixels"));
  }
  return ImageSize{static_cast<int>(width), static_cast<int>(height)};
}

// SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
bool IsStartOfFrame(uint32_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// Markers without a length field: TEM and RST0..RST7 (and a repeated SOI, tolerated).
bool IsStandalone(uint32_t marker) { return marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8); }

// The frame size from a SOF segment whose length field starts at `pos`.
absl::StatusOr<ImageSize> ReadJpegFrame(absl::string_view bytes, size_t pos) {
  // Length (2), precision (1), height (2), width (2), component count (1).
  if (Be16(bytes, pos) < 8) return Malformed("JPEG", "frame header shorter than 8 bytes");
  if (!Has(bytes, pos, 8)) return Truncated("JPEG");
  const uint32_t height = Be16(bytes, pos + 3);
  const uint32_t width = Be16(bytes, pos + 5);
  if (height == 0) {
    return Malformed("JPEG", "height 0, to be defined by a DNL marker, is not supported");
  }
  return CheckSides("JPEG", width, height);
}

}  // namespace

absl::StatusOr<ImageSize> ReadPngSize(absl::string_view bytes) {
  static constexpr absl::string_view kSignature("\x89PNG\r\n\x1a\n", 8);
  if (!Has(bytes, 0, kSignature.size())) return Truncated("PNG");
  if (bytes.substr(0, kSignature.size()) != kSignature) return Malformed("PNG", "bad signature");
  // Chunk length (4), "IHDR" (4), width (4), height (4).
  if (!Has(bytes, 8, 16)) return Truncated("PNG");
  if (Be32(bytes, 8) != 13 || bytes.substr(12, 4) != "IHDR") {
    return Malformed("PNG", "the first chunk is not a 13-byte IHDR");
  }
  return CheckSides("PNG", Be32(bytes, 16), Be32(bytes, 20));
}

absl::StatusOr<ImageSize> ReadJpegSize(absl::string_view bytes) {
  if (!Has(bytes, 0, 2)) return Truncated("JPEG");
  if (U8(bytes, 0) != 0xFF || U8(bytes, 1) != 0xD8) return Malformed("JPEG", "no SOI marker");
  size_t pos = 2;
  while (true) {  // `pos` grows by at least one byte per iteration.
    if (!Has(bytes, pos, 1)) return Truncated("JPEG");
    if (U8(bytes, pos) != 0xFF) {
      return Malformed("JPEG", absl::StrCat("expected a marker at byte ", pos));
    }
    while (Has(bytes, pos, 1) && U8(bytes, pos) == 0xFF) ++pos;  // fill bytes
    if (!Has(bytes, pos, 1)) return Truncated("JPEG");
    const uint32_t marker = U8(bytes, pos++);
    if (IsStandalone(marker)) continue;
    if (marker == 0x00 || marker == 0xD9 || marker == 0xDA) {
      return Malformed("JPEG", "no frame header (SOF) before the image data");
    }
    if (!Has(bytes, pos, 2)) return Truncated("JPEG");
    if (IsStartOfFrame(marker)) return ReadJpegFrame(bytes, pos);
    const uint32_t length = Be16(bytes, pos);  // includes the two length bytes
    if (length < 2) return Malformed("JPEG", "segment length below 2");
    pos += length;
  }
}

absl::Status CheckJpegComplete(absl::string_view bytes) {
  size_t pos = 2;  // after SOI; ReadJpegSize has validated the header up to the frame
  while (Has(bytes, pos, 1) && U8(bytes, pos) == 0xFF) {
    while (Has(bytes, pos, 1) && U8(bytes, pos) == 0xFF) ++pos;  // fill bytes
    if (!Has(bytes, pos, 1)) break;
    const uint32_t marker = U8(bytes, pos++);
    if (IsStandalone(marker)) continue;
    if (marker == 0xDA) {  // start of scan: the entropy-coded data must end with EOI
      const size_t end = bytes.rfind("\xFF\xD9");
      if (end != absl::string_view::npos && end > pos) return absl::OkStatus();
      break;
    }
    if (!Has(bytes, pos, 2) || Be16(bytes, pos) < 2) break;
    pos += Be16(bytes, pos);
  }
  return absl::InvalidArgumentError(
      "truncated JPEG data (no end-of-image marker after the image data)");
}

absl::StatusOr<ImageSize> ReadWebpSize(absl::string_view bytes) {
  if (!Has(bytes, 0, 12)) return Truncated("WebP");
  if (bytes.substr(0, 4) != "RIFF" || bytes.substr(8, 4) != "WEBP") {
    return Malformed("WebP", "no RIFF/WEBP signature");
  }
  // First chunk: FourCC (4), payload size (4), payload at offset 20.
  if (!Has(bytes, 12, 8)) return Truncated("WebP");
  const absl::string_view fourcc = bytes.substr(12, 4);
  constexpr size_t kData = 20;
  if (fourcc == "VP8 ") {
    // Frame tag (3), start code 9D 01 2A (3), 14-bit width and height (2 + 2).
    if (!Has(bytes, kData, 10)) return Truncated("WebP");
    if ((U8(bytes, kData) & 1) != 0) return Malformed("WebP", "VP8 frame is not a key frame");
    if (U8(bytes, kData + 3) != 0x9D || U8(bytes, kData + 4) != 0x01 ||
        U8(bytes, kData + 5) != 0x2A) {
      return Malformed("WebP", "bad VP8 start code");
    }
    return CheckSides("WebP", Le16(bytes, kData + 6) & 0x3FFF, Le16(bytes, kData + 8) & 0x3FFF);
  }
  if (fourcc == "VP8L") {
    // Signature 0x2F, then 14 bits width - 1 and 14 bits height - 1, little-endian.
    if (!Has(bytes, kData, 5)) return Truncated("WebP");
    if (U8(bytes, kData) != 0x2F) return Malformed("WebP", "bad VP8L signature");
    const uint32_t bits = Le32(bytes, kData + 1);
    return CheckSides("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1);
  }
  if (fourcc == "VP8X") {
    // Flags (1), reserved (3), 24-bit canvas width - 1 and height - 1.
    if (!Has(bytes, kData, 10)) return Truncated("WebP");
    return CheckSides("WebP", int64_t{Le24(bytes, kData + 4)} + 1,
                      int64_t{Le24(bytes, kData + 7)} + 1);
  }
  return Malformed("WebP",
                   absl::StrCat("unexpected first chunk \"", absl::CHexEscape(fourcc), "\""));
}

absl::StatusOr<ImageSize> ReadBmpSize(absl::string_view bytes) {
  // File header (14 bytes, starting "BM"), then the info header starting with its own size.
  if (!Has(bytes, 0, 2)) return Truncated("BMP");
  if (bytes.substr(0, 2) != "BM") return Malformed("BMP", "no BM signature");
  if (!Has(bytes, 14, 4)) return Truncated("BMP");
  const uint32_t info_size = Le32(bytes, 14);
  if (info_size == 12) {  // BITMAPCOREHEADER: unsigned 16-bit width and height
    if (!Has(bytes, 18, 4)) return Truncated("BMP");
    return CheckSides("BMP", Le16(bytes, 18), Le16(bytes, 20));
  }
  if (info_size < 16) {
    return Malformed("BMP", absl::StrCat("unknown info header size ", info_size));
  }
  // BITMAPINFOHEADER, OS/2 2.x and V4/V5 headers: signed 32-bit width and height.
  if (!Has(bytes, 18, 8)) return Truncated("BMP");
  const int64_t width = static_cast<int32_t>(Le32(bytes, 18));
  const int64_t height = static_cast<int32_t>(Le32(bytes, 22));
  return CheckSides("BMP", width, height < 0 ? -height : height);  // negative: top-down rows
}

}  // namespace dinov3::preprocess::internal
