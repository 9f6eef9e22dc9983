// The native dinov3.v1 front door's mapping: an EmbedRequest to the pipeline's EmbedJob (its
// enums and fields checked in field order, the protocol-free checks of job_validation.h among
// them), the pipeline's EmbedResult to an EmbedResponse (tensors moved, never copied), the model
// info, and the one place that maps absl::Status to grpc::Status.
//
// Validation errors are InvalidArgument and name the field (and image index) and the limit.
#ifndef DINOV3_SERVER_SERVICE_PROTO_CONVERSION_H_
#define DINOV3_SERVER_SERVICE_PROTO_CONVERSION_H_

#include <grpcpp/support/status.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "dinov3/v1/embedding.pb.h"
#include "server/common/types.h"
#include "server/pipeline/embed_job.h"
#include "server/pipeline/embed_result.h"
#include "server/pipeline/request_limits.h"
#include "server/registry/model_description.h"

namespace dinov3::service {

grpc::Status ToGrpcStatus(const absl::Status& status);

// Checks everything about `request` that does not need decoding (image count, id lengths, each
// image has a source, raw formats, outputs, dtype, priority, preprocessing options) and returns
// the job it asks for, whose images view the bytes of `request` (its owner).
absl::StatusOr<pipeline::EmbedJob> ToEmbedJob(std::shared_ptr<const v1::EmbedRequest> request,
                                              const pipeline::RequestLimits& limits);

// The job of an EmbedDense request: its one image, patch tokens only.
absl::StatusOr<pipeline::EmbedJob> ToEmbedJob(std::shared_ptr<const v1::EmbedDenseRequest> request,
                                              const pipeline::RequestLimits& limits);

// The answer of `result`, whose tensors' bytes it takes (no copy).
v1::EmbedResponse ToEmbedResponse(pipeline::EmbedResult&& result);

// Moves the bytes of `data` into `tensor` (no copy).
void MoveToProto(TensorData&& data, v1::Tensor* tensor);
void MoveToProto(EmbeddingResult&& result, v1::Embedding* embedding);

// The ModelInfo of a served model (`description`: the registry's, plain data).
v1::ModelInfo MakeModelInfo(const registry::ModelDescription& description);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_PROTO_CONVERSION_H_
