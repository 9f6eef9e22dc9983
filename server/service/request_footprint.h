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
// Fields around the tensors of one embedding (shapes, dtype, grid, id), generously.
inline constexpr int64_t kResponseBytesPerImage = 1024;

// Transients that do not grow with the number of requests, reserved once at start-up: each
// decode thread holds up to one full-size decoded image in the decoder's own buffer, and each
// model instance one full-size image as float32 while it resizes it.
inline constexpr int64_t kDecodeTransientBytesPerPixel = 4;
inline constexpr int64_t kModelInputTransientBytesPerPixel = 3 * 4;

// The bytes of those transients for `decode_threads` threads and `instances` model instances
// at the largest accepted image (limits.max_pixels).
inline int64_t FixedTransientBytes(int decode_threads, int instances, int64_t max_pixels) {
  return (decode_threads * kDecodeTransientBytesPerPixel +
          instances * kModelInputTransientBytesPerPixel) *
         max_pixels;
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
