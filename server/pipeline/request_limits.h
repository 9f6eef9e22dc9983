// The limits a request is checked against and the model facts its footprint needs, shared by the
// pipeline and the front doors (which report them: GetModelInfo, the KServe metadata). Plain
// data; protocol-free.
#ifndef DINOV3_SERVER_PIPELINE_REQUEST_LIMITS_H_
#define DINOV3_SERVER_PIPELINE_REQUEST_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "server/preprocess/image_decoder.h"
#include "server/preprocess/resize_plan.h"

namespace dinov3::pipeline {

// The model's output sizes, for a request's memory footprint.
struct ModelShape {
  int embed_dim = 0;
  int num_registers = 0;
  int depth = 0;               // transformer blocks
  bool serves_layers = false;  // the export has forward_layers (intermediate layers)
};

// Limits a request is checked against, and the server's defaults for what it leaves unset.
struct RequestLimits {
  int max_images_per_request = 64;
  preprocess::ImageLimits image;
  preprocess::ModelGeometry geometry;
  ModelShape model;
  int64_t max_receive_message_bytes = 64 << 20;
  preprocess::DecodeMode default_decode = preprocess::DecodeMode::kExact;  // server.decode
};

// Longest request_id and image id accepted (they are echoed in every answer).
inline constexpr size_t kMaxIdBytes = 1024;

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_REQUEST_LIMITS_H_
