// Conversions between the dinov3.v1 protos and the server's internal types, request validation
// that needs no decoding, and the one place that maps absl::Status to grpc::Status.
//
// Validation errors are InvalidArgument and name the field (and image index) and the limit.
#ifndef DINOV3_SERVER_SERVICE_PROTO_CONVERSION_H_
#define DINOV3_SERVER_SERVICE_PROTO_CONVERSION_H_

#include <grpcpp/support/status.h>

#include "absl/status/statusor.h"
#include "dinov3/v1/embedding.pb.h"
#include "model/runtime/model_metadata.h"
#include "server/common/cpu_features.h"
#include "server/common/types.h"
#include "server/preprocess/image_decoder.h"
#include "server/preprocess/resize_plan.h"

namespace dinov3::service {

// The model's output sizes, for a request's memory footprint.
struct ModelShape {
  int embed_dim = 0;
  int num_registers = 0;
};

// Limits a request is checked against, and the server's defaults for what it leaves unset (also
// reported by GetModelInfo).
struct RequestLimits {
  int max_images_per_request = 64;
  preprocess::ImageLimits image;
  preprocess::ModelGeometry geometry;
  ModelShape model;
  int64_t max_receive_message_bytes = 64 << 20;
  preprocess::DecodeMode default_decode = preprocess::DecodeMode::kExact;  // server.decode
};

grpc::Status ToGrpcStatus(const absl::Status& status);

// Longest request_id and image id accepted (they are echoed in every answer).
inline constexpr size_t kMaxIdBytes = 1024;

// What an EmbedRequest asks for, beyond its images.
struct EmbedSettings {
  OutputSet outputs;
  DType dtype = DType::kFloat32;
  preprocess::PreprocessOptions preprocess;
  int priority = 0;  // EmbedTask priority: LOW -1, NORMAL 0, HIGH 1
};

// Checks everything about `request` that does not need decoding (image count, id lengths, each
// image has a source, raw formats, outputs, dtype, priority, preprocessing options) and returns the
// settings it asks for.
absl::StatusOr<EmbedSettings> ParseEmbedRequest(const v1::EmbedRequest& request,
                                                const RequestLimits& limits);

// The decoded size of an image (encoded: from its header; raw: its fields), with every check
// the decoder makes before decoding.
absl::StatusOr<preprocess::ImageSize> RequestImageSize(const v1::Image& image,
                                                       const preprocess::ImageLimits& limits);

// Decodes an image (encoded or raw) into RGB8 with the image limits, a JPEG at the scale
// `options.decode` allows (preprocess::ChooseDecodeReduction against limits.geometry); full_size
// is what its resize is planned for.
absl::StatusOr<preprocess::ReducedImage> DecodeRequestImage(
    const v1::Image& image, const RequestLimits& limits,
    const preprocess::PreprocessOptions& options);

// Moves the bytes of `data` into `tensor` (no copy).
v1::DType ToProtoDType(DType dtype);
void MoveToProto(TensorData&& data, v1::Tensor* tensor);
void MoveToProto(EmbeddingResult&& result, v1::Embedding* embedding);

v1::ModelInfo MakeModelInfo(const model::ModelMetadata& metadata, const RequestLimits& limits,
                            const std::string& device, const CpuFeatures& cpu);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_PROTO_CONVERSION_H_
