// Internal to server/preprocess: reads the width and height of an encoded image from its header
// alone, without decoding pixels. Used by image_decoder.cc to refuse decompression bombs before
// any decoder runs.
//
// Every read is bounds-checked against `bytes`: a truncated or malformed header gives
// InvalidArgument ("truncated JPEG header", "malformed PNG header (...)"), never an
// out-of-bounds read. Each reader checks the magic bytes of its own format. The returned sides
// are >= 1. Thread-safe: pure functions.
#ifndef DINOV3_SERVER_PREPROCESS_IMAGE_HEADER_H_
#define DINOV3_SERVER_PREPROCESS_IMAGE_HEADER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/preprocess/image_decoder.h"

namespace dinov3::preprocess::internal {

// PNG: signature followed by the IHDR chunk.
absl::StatusOr<ImageSize> ReadPngSize(absl::string_view bytes);

// JPEG: walks the marker segments up to the first SOFn (n = 0..15, except DHT, JPG and DAC),
// skipping fill bytes and standalone markers.
absl::StatusOr<ImageSize> ReadJpegSize(absl::string_view bytes);

// JPEG: OK when an EOI marker follows the first top-level SOS, i.e. the image data is complete
// (libjpeg would otherwise fill a cut-off image with grey and report success).
absl::Status CheckJpegComplete(absl::string_view bytes);

// WebP: the first chunk after the RIFF header, "VP8 " (lossy), "VP8L" (lossless) or "VP8X"
// (extended; the canvas size).
absl::StatusOr<ImageSize> ReadWebpSize(absl::string_view bytes);

// BMP: BITMAPCOREHEADER (16-bit sides) or BITMAPINFOHEADER and its successors (32-bit sides; a
// negative height means top-down rows and reads as its absolute value).
absl::StatusOr<ImageSize> ReadBmpSize(absl::string_view bytes);

}  // namespace dinov3::preprocess::internal

#endif  // DINOV3_SERVER_PREPROCESS_IMAGE_HEADER_H_
