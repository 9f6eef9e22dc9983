// What an EmbedJob will make the server hold, computed before any of it is allocated: from the
// request's size as received, each image's header (or raw) size, the resize plan, the model's
// token count and embedding dimension, the requested outputs and dtype, and what the front
// door's answer holds per byte of it (AnswerSize; SECURITY.md "Memory bounds" spells the formula
// out). Used by EmbedPipeline::Admit to reserve the request's bytes in the MemoryBudget, and to
// refuse a response protobuf could never encode (2 GiB).
//
// Errors are InvalidArgument naming the image index and what is wrong (the same checks the
// decoder makes before decoding). Pure functions; protocol-free.
#ifndef DINOV3_SERVER_PIPELINE_REQUEST_FOOTPRINT_H_
#define DINOV3_SERVER_PIPELINE_REQUEST_FOOTPRINT_H_

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/pipeline/embed_job.h"
#include "server/pipeline/request_limits.h"
#include "server/preprocess/resize_plan.h"

namespace dinov3::pipeline {

// Bytes per pixel the server holds for each part of an image's way through it.
inline constexpr int64_t kDecodedBytesPerPixel = 3;  // RGB8, until the model has run
// float32 RGB model input, twice: the image's own tensor and its row of the stacked batch.
inline constexpr int64_t kModelInputBytesPerPixel = 3 * 4 * 2;
inline constexpr int64_t kModelOutputBytesPerValue = 4;  // the model's float32 token outputs
// protobuf cannot encode (nor gRPC send) a message above 2 GiB - 1 bytes.
inline constexpr int64_t kMaxResponseMessageBytes = 2147483647;
// Fields around the tensors of one embedding (shapes, dtype, grid), generously; ids (at most
// kMaxIdBytes, request_limits.h) are counted on top.
inline constexpr int64_t kResponseBytesPerImage = 1024;

// Transients that do not grow with the number of requests, held for the server's life.
// Decoding: the decoder's own buffers for one image (a progressive JPEG's coefficients, 6 bytes
// per pixel; the BGR image, 3; an EXIF rotation's copy, 3), reserved per image from a shared
// decode budget while it decodes (decode threads wait for room there, never the client).
inline constexpr int64_t kDecodeTransientBytesPerPixel = 12;
// Building an image's model input on a CPU, besides the input itself (counted per request): the
// full-size float32 copy (12 bytes per pixel), the resize's horizontal-pass intermediate and
// its output (12 bytes per pixel each, both at most max_resize_pixels: PlanResize refuses more).
inline int64_t HostInputTransientBytes(int64_t pixels, int64_t intermediate_pixels,
                                       int64_t resize_pixels) {
  return 12 * (pixels + intermediate_pixels + resize_pixels);
}
inline int64_t HostInputTransientBytes(const RgbImage& image, const ResizePlan& plan) {
  return HostInputTransientBytes(
      int64_t{image.width} * image.height,
      preprocess::ResizeIntermediatePixels(image.height, image.width, plan),
      int64_t{plan.resize_height} * plan.resize_width);
}
// The most one preprocess job holds at once: its decoder transient, or with `host_input` (the
// engine builds model inputs on the preprocess pool) the conversion's after it.
inline int64_t PreprocessTransientBytes(bool host_input, int64_t max_pixels,
                                        int64_t max_resize_pixels) {
  const int64_t decode = kDecodeTransientBytesPerPixel * max_pixels;
  if (!host_input) return decode;
  return std::max(decode,
                  HostInputTransientBytes(max_pixels, max_resize_pixels, max_resize_pixels));
}
// The decode budget: room for one preprocess job at least (`one`, PreprocessTransientBytes), for
// every preprocess thread at most, and no more than a quarter of the memory budget beyond the
// first.
inline int64_t DecodeBudgetBytes(int decode_threads, int64_t one, int64_t budget) {
  return std::max(one, std::min(decode_threads * one, budget / 4));
}
// A model instance, for its largest image, when it builds the input itself: on a CPU the
// conversion's transient (HostInputTransientBytes); a CUDA instance stages the uint8 pixels in
// pinned host memory (3 bytes per pixel), the rest is device memory. 0 when the preprocess pool
// builds the inputs (`host_input`): the instance only stacks them (counted per request).
inline int64_t InstanceTransientBytes(bool cuda, bool host_input, int64_t max_pixels,
                                      int64_t max_resize_pixels) {
  if (cuda) return 3 * max_pixels;
  if (host_input) return 0;
  return HostInputTransientBytes(max_pixels, max_resize_pixels, max_resize_pixels);
}

struct RequestFootprint {
  int64_t request_bytes = 0;       // the request as received (EmbedJob::received_bytes)
  int64_t decoded_bytes = 0;       // all images as RGB8
  int64_t model_input_bytes = 0;   // all images' model inputs
  int64_t model_output_bytes = 0;  // all images' token outputs as the model returns them
  int64_t response_bytes = 0;      // the answer in binary: a dinov3.v1 EmbedResponse on the wire
  int64_t answer_bytes = 0;        // what the front door's answer holds (AnswerSize)
  int64_t total() const {
    return request_bytes + decoded_bytes + model_input_bytes + model_output_bytes + answer_bytes;
  }
  // "request 1234 + decoded pixels ... + response 2 x ..." for error messages ("+ answer N" when
  // the answer is not the binary one held twice).
  std::string Describe() const;
};

// The footprint of `job` (validated: ValidateJob).
absl::StatusOr<RequestFootprint> EstimateFootprint(const EmbedJob& job,
                                                   const RequestLimits& limits);

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_REQUEST_FOOTPRINT_H_
