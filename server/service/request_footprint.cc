#include "server/service/request_footprint.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"

namespace dinov3::service {
namespace {

struct ImageShape {
  int64_t pixels = 0;        // decoded width * height
  int64_t model_pixels = 0;  // out_height * out_width
  int64_t patches = 0;
};

// The larger of the two plans for the header's size and its transpose: EXIF orientation may
// swap the sides after decoding.
absl::StatusOr<ImageShape> ShapeOf(const v1::Image& image, const EmbedSettings& settings,
                                   const RequestLimits& limits) {
  ASSIGN_OR_RETURN(const preprocess::ImageSize size, RequestImageSize(image, limits.image));
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

// Values of the requested outputs of one image.
int64_t OutputValues(const OutputSet& outputs, int64_t patches, const ModelShape& model) {
  int64_t tokens = 0;
  if (outputs.cls) tokens += 1;
  if (outputs.pooled) tokens += 1;
  if (outputs.registers) tokens += model.num_registers;
  if (outputs.patch_tokens) tokens += patches;
  return tokens * model.embed_dim;
}

}  // namespace

std::string RequestFootprint::Describe() const {
  return absl::StrCat("request ", request_bytes, " + decoded pixels ", decoded_bytes,
                      " + model inputs ", model_input_bytes, " + model outputs ",
                      model_output_bytes, " + response ", kResponseCopies, " x ", response_bytes,
                      " bytes");
}

absl::StatusOr<RequestFootprint> EstimateFootprint(const v1::EmbedRequest& request,
                                                   const EmbedSettings& settings,
                                                   const RequestLimits& limits) {
  const ModelShape& model = limits.model;
  RequestFootprint f;
  f.request_bytes = static_cast<int64_t>(request.ByteSizeLong());
  for (int i = 0; i < request.images_size(); ++i) {
    absl::StatusOr<ImageShape> shape = ShapeOf(request.images(i), settings, limits);
    if (!shape.ok()) return ImageError(i, shape.status());
    f.decoded_bytes += kDecodedBytesPerPixel * shape->pixels;
    f.model_input_bytes += kModelInputBytesPerPixel * shape->model_pixels;
    f.model_output_bytes +=
        (1 + model.num_registers + shape->patches) * model.embed_dim * kModelOutputBytesPerValue;
    f.response_bytes += OutputValues(settings.outputs, shape->patches, model) *
                            DTypeSize(settings.dtype) +
                        kResponseBytesPerImage + static_cast<int64_t>(request.images(i).id().size());
  }
  f.response_bytes += static_cast<int64_t>(request.request_id().size());
  return f;
}

}  // namespace dinov3::service
