// The protocol-free request the front doors hand to the pipeline (DESIGN.md §2): the images, what
// to compute for them, and how big the request and its answer are. Each front door maps its own
// protocol onto an EmbedJob; nothing below the front doors sees a protocol type.
//
// Ownership: the images' bytes and ids are views, never copies, into storage the front door
// received them in (the gRPC message, the KServe request's buffers, OpenAI's decoded base64);
// `owner` keeps that storage alive for as long as the job (or a copy of it) exists. Plain data.
#ifndef DINOV3_SERVER_PIPELINE_EMBED_JOB_H_
#define DINOV3_SERVER_PIPELINE_EMBED_JOB_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "server/common/types.h"
#include "server/preprocess/image_decoder.h"
#include "server/preprocess/resize_plan.h"

namespace dinov3::pipeline {

// Raw pixels: `height` rows of `width` pixels in `format`, row-major, no padding. The sides are
// the client's numbers, checked by the pipeline (JobImageSize).
struct RawPixels {
  int64_t width = 0;
  int64_t height = 0;
  preprocess::RawPixelFormat format = preprocess::RawPixelFormat::kRgb8;
};

// One image: an encoded file (JPEG, PNG, WebP, BMP) or, with `raw`, raw pixels.
struct JobImage {
  absl::string_view id;     // echoed in the answer; at most kMaxIdBytes
  absl::string_view bytes;  // the encoded file, or the raw pixels
  std::optional<RawPixels> raw;
};

inline JobImage EncodedJobImage(absl::string_view bytes, absl::string_view id = {}) {
  JobImage image;
  image.id = id;
  image.bytes = bytes;
  return image;
}
inline JobImage RawJobImage(absl::string_view bytes, const RawPixels& raw,
                            absl::string_view id = {}) {
  JobImage image = EncodedJobImage(bytes, id);
  image.raw = raw;
  return image;
}

// What a request asks for, beyond its images.
struct EmbedSettings {
  OutputSet outputs;
  DType dtype = DType::kFloat32;
  preprocess::PreprocessOptions preprocess;  // decode: already the server's default if unset
  bool l2_normalize = false;
  LayerSelection layers;  // intermediate layers beside the final outputs
  int priority = 0;       // EmbedTask priority: low -1, normal 0, high 1
};

// The native gRPC answer is held twice while gRPC serializes it: the message and its wire bytes.
inline constexpr int64_t kResponseCopies = 2;

// How much memory a front door's answer holds at its peak (all its copies together), in bytes
// per byte of the binary answer's parts: the output tensors, and the rest (ids, shapes and
// fields, kResponseBytesPerImage per image; request_footprint.h). The default is the native
// answer's. A JSON answer of numbers holds far more per tensor byte.
struct AnswerSize {
  double per_tensor_byte = kResponseCopies;
  double per_other_byte = kResponseCopies;
};

struct EmbedJob {
  std::shared_ptr<const void> owner;  // keeps the storage `images` views alive
  std::vector<JobImage> images;
  EmbedSettings settings;
  std::string request_id;      // echoed in the answer; at most kMaxIdBytes
  std::string model_name;      // the served model the request addresses ("" = the default model)
  int64_t received_bytes = 0;  // the request as the front door holds it
  AnswerSize answer_size;
};

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_EMBED_JOB_H_
