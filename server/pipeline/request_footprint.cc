#include "server/pipeline/request_footprint.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"
#include "server/pipeline/job_image.h"

namespace dinov3::pipeline {
namespace {

struct ImageShape {
  int64_t pixels = 0;        // decoded width * height
  int64_t model_pixels = 0;  // out_height * out_width
  int64_t patches = 0;
};

// The larger of the two plans for the header's size and its transpose: EXIF orientation may
// swap the sides after decoding.
absl::StatusOr<ImageShape> ShapeOf(const JobImage& image, const EmbedSettings& settings,
                                   const RequestLimits& limits) {
  ASSIGN_OR_RETURN(const preprocess::ImageSize size, JobImageSize(image, limits.image));
  ImageShape shape;
  shape.pixels = int64_t{size.width} * size.height;
  for (const auto& [h, w] : {std::pair{size.height, size.width}, {size.width, size.height}}) {
    ASSIGN_OR_RETURN(const ResizePlan plan,
                     preprocess::PlanResize(h, w, settings.preprocess, limits.geometry));
    const int64_t model_pixels = int64_t{plan.out_height} * plan.out_width;
    shape.model_pixels = std::max(shape.model_pixels, model_pixels);
  }
  const int64_t patch = limits.geometry.patch_size;
  shape.patches = shape.model_pixels / (patch * patch);
  return shape;
}

// Vectors (of embed_dim values each) of the requested outputs of one image.
int64_t OutputVectors(const OutputSet& outputs, int64_t patches, const ModelShape& model) {
  int64_t vectors = 0;
  if (outputs.cls) vectors += 1;
  if (outputs.pooled) vectors += 1;
  if (outputs.registers) vectors += model.num_registers;
  if (outputs.patch_tokens) vectors += patches;
  return vectors;
}

int64_t Scaled(double factor, int64_t bytes) {
  return static_cast<int64_t>(std::ceil(factor * static_cast<double>(bytes)));
}

}  // namespace

std::string RequestFootprint::Describe() const {
  const std::string answer = answer_bytes == kResponseCopies * response_bytes
                                 ? absl::StrCat("response ", kResponseCopies, " x ", response_bytes)
                                 : absl::StrCat("answer ", answer_bytes);
  return absl::StrCat("request ", request_bytes, " + decoded pixels ", decoded_bytes,
                      " + model inputs ", model_input_bytes, " + model outputs ",
                      model_output_bytes, " + ", answer, " bytes");
}

absl::StatusOr<RequestFootprint> EstimateFootprint(const EmbedJob& job,
                                                   const RequestLimits& limits) {
  const ModelShape& model = limits.model;
  const EmbedSettings& settings = job.settings;
  RequestFootprint f;
  f.request_bytes = job.received_bytes;
  int64_t tensor_bytes = 0;
  int64_t other_bytes = static_cast<int64_t>(job.request_id.size());
  for (size_t i = 0; i < job.images.size(); ++i) {
    absl::StatusOr<ImageShape> shape = ShapeOf(job.images[i], settings, limits);
    if (!shape.ok()) return ImageError(static_cast<int>(i), shape.status());
    f.decoded_bytes += kDecodedBytesPerPixel * shape->pixels;
    f.model_input_bytes += kModelInputBytesPerPixel * shape->model_pixels;
    // The final outputs and those of each intermediate layer asked for.
    const int64_t outputs = 1 + static_cast<int64_t>(settings.layers.indices.size());
    f.model_output_bytes += outputs * (1 + model.num_registers + shape->patches) * model.embed_dim *
                            kModelOutputBytesPerValue;
    tensor_bytes += outputs * OutputVectors(settings.outputs, shape->patches, model) *
                    VectorWireBytes(settings.dtype, model.embed_dim);
    // Each layer's entry is another set of tensors with their fields, like an image's.
    other_bytes += outputs * kResponseBytesPerImage + static_cast<int64_t>(job.images[i].id.size());
  }
  f.response_bytes = tensor_bytes + other_bytes;
  f.answer_bytes = Scaled(job.answer_size.per_tensor_byte, tensor_bytes) +
                   Scaled(job.answer_size.per_other_byte, other_bytes);
  return f;
}

}  // namespace dinov3::pipeline
