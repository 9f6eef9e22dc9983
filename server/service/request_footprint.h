// What an EmbedRequest will make the server hold, computed before any of it is allocated: from
// the message's own size, each image's header (or raw) size, the resize plan, the model's token
// count and embedding dimension and the requested outputs and dtype (SECURITY.md "Memory
// bounds" spells the formula out). Used by EmbedPipeline::Admit to reserve the request's bytes
// in the MemoryBudget, and to refuse a response protobuf could never encode (2 GiB).
//
// Errors are InvalidArgument naming the image index and what is wrong (the same checks the
// decoder makes before decoding). Pure functions; gRPC-free apart from the message types.
#ifndef DINOV3_SERVER_SERVICE_REQUEST_FOOTPRINT_H_
#define DINOV3_SERVER_SERVICE_REQUEST_FOOTPRINT_H_

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "dinov3/v1/embedding.pb.h"
#include "server/service/proto_conversion.h"

namespace dinov3::service {

// Bytes per pixel the server holds for each part of an image's way through it.
inline constexpr int64_t kDecodedBytesPerPixel = 3;  // RGB8, until the model has run
// float32 RGB model input, twice: the image's own tensor and its row of the stacked batch.
inline constexpr int64_t kModelInputBytesPerPixel = 3 * 4 * 2;
inline constexpr int64_t kModelOutputBytesPerValue = 4;  // the model's float32 token outputs
// The response is held twice while gRPC serializes it: the message and its wire bytes.
inline constexpr int64_t kResponseCopies = 2;
// protobuf cannot encode (nor gRPC send) a message above 2 GiB - 1 bytes.
inline constexpr int64_t kMaxResponseMessageBytes = 2147483647;
// Fields around the tensors of one embedding (shapes, dtype, grid), generously; ids (at most
// kMaxIdBytes, proto_conversion.h) are counted on top.
inline constexpr int64_t kResponseBytesPerImage = 1024;

// Transients that do not grow with the number of requests, held for the server's life.
// Decoding: the decoder's own buffers for one image (a progressive JPEG's coefficients, 6 bytes
// per pixel; the BGR image, 3; an EXIF rotation's copy, 3), reserved per image from a shared
// decode budget while it decodes (decode threads wait for room there, never the client).
inline constexpr int64_t kDecodeTransientBytesPerPixel = 12;
// The decode budget: room for one image of max_pixels at least, for every decode thread at most,
// and no more than a quarter of the memory budget beyond the first.
inline int64_t DecodeBudgetBytes(int decode_threads, int64_t max_pixels, int64_t budget) {
  const int64_t one = kDecodeTransientBytesPerPixel * max_pixels;
  return std::max(one, std::min(decode_threads * one, budget / 4));
}
// A model instance, for its largest image: on a CPU the full-size float32 copy while it is
// resized (12 bytes per pixel) and the resized intermediate before the crop, twice while it is
// normalised (24 bytes per pixel of max_resize_pixels); a CUDA instance stages the uint8 pixels
// in pinned host memory (3 bytes per pixel), the rest is device memory.
inline int64_t InstanceTransientBytes(bool cuda, int64_t max_pixels, int64_t max_resize_pixels) {
  return cuda ? 3 * max_pixels : 12 * max_pixels + 24 * max_resize_pixels;
}

struct RequestFootprint {
  int64_t request_bytes = 0;         // the message as received
  int64_t decoded_bytes = 0;         // all images as RGB8
  int64_t model_input_bytes = 0;     // all images' model inputs
  int64_t model_output_bytes = 0;    // all images' token outputs as the model returns them
  int64_t response_bytes = 0;        // the EmbedResponse on the wire
  int64_t total() const {
    return request_bytes + decoded_bytes + model_input_bytes + model_output_bytes +
           kResponseCopies * response_bytes;
  }
  // "request 1234 + decoded pixels ... + response 2 x ..." for error messages.
  std::string Describe() const;
};

// The footprint of `request` with the settings ParseEmbedRequest returned for it.
absl::StatusOr<RequestFootprint> EstimateFootprint(const v1::EmbedRequest& request,
                                                   const EmbedSettings& settings,
                                                   const RequestLimits& limits);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_REQUEST_FOOTPRINT_H_
