#include "server/service/proto_conversion.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"
#include "server/pipeline/job_validation.h"

namespace dinov3::service {
namespace {

absl::StatusOr<preprocess::RawPixelFormat> ToRawFormat(int format) {
  switch (format) {
    case v1::RGB8:
      return preprocess::RawPixelFormat::kRgb8;
    case v1::BGR8:
      return preprocess::RawPixelFormat::kBgr8;
    case v1::GRAY8:
      return preprocess::RawPixelFormat::kGray8;
    case v1::RGBA8:
      return preprocess::RawPixelFormat::kRgba8;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("raw.format ", format, " is not one of RGB8, BGR8, GRAY8, RGBA8"));
  }
}

// Image `index` of a request as a job image viewing its bytes.
absl::StatusOr<pipeline::JobImage> ToJobImage(const v1::Image& image, int index) {
  pipeline::JobImage job_image;
  job_image.id = image.id();
  switch (image.source_case()) {
    case v1::Image::kEncoded:
      job_image.bytes = image.encoded();
      return job_image;
    case v1::Image::kRaw: {
      const v1::RawImage& raw = image.raw();
      absl::StatusOr<preprocess::RawPixelFormat> format = ToRawFormat(raw.format());
      if (!format.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("image[", index, "]: ", format.status().message()));
      }
      job_image.bytes = raw.data();
      job_image.raw = pipeline::RawPixels{raw.width(), raw.height(), *format};
      return job_image;
    }
    case v1::Image::SOURCE_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("image[", index, "]: neither encoded bytes nor raw pixels were set"));
}

absl::StatusOr<OutputSet> ToOutputSet(const google::protobuf::RepeatedField<int>& outputs) {
  OutputSet set;
  if (outputs.empty()) {
    set.cls = set.pooled = true;
    return set;
  }
  for (int output : outputs) {
    switch (output) {
      case v1::CLS:
        set.cls = true;
        break;
      case v1::POOLED:
        set.pooled = true;
        break;
      case v1::PATCH_TOKENS:
        set.patch_tokens = true;
        break;
      case v1::REGISTERS:
        set.registers = true;
        break;
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("outputs: unknown output ", output,
                         "; expected CLS (1), POOLED (2), PATCH_TOKENS (3) or REGISTERS (4)"));
    }
  }
  return set;
}

absl::StatusOr<DType> ToDType(int dtype) {
  switch (dtype) {
    case v1::FLOAT32:
      return DType::kFloat32;
    case v1::FLOAT16:
      return DType::kFloat16;
    case v1::BFLOAT16:
      return DType::kBFloat16;
    case v1::INT8:
      return DType::kInt8;
    case v1::UINT8:
      return DType::kUint8;
    case v1::BINARY:
      return DType::kBinary;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "dtype: unknown dtype ", dtype,
          "; expected FLOAT32 (0), FLOAT16 (1), BFLOAT16 (2), INT8 (3), UINT8 (4) or BINARY (5)"));
  }
}

absl::StatusOr<int> ToTaskPriority(int priority) {
  switch (priority) {
    case v1::PRIORITY_NORMAL:
      return 0;
    case v1::PRIORITY_HIGH:
      return 1;
    case v1::PRIORITY_LOW:
      return -1;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("priority: unknown priority ", priority,
                       "; expected PRIORITY_NORMAL (0), PRIORITY_HIGH (1) or PRIORITY_LOW (2)"));
  }
}

absl::StatusOr<preprocess::DecodeMode> ToDecodeMode(v1::DecodeMode mode,
                                                    preprocess::DecodeMode server_default) {
  switch (mode) {
    case v1::DECODE_SERVER_DEFAULT:
      return server_default;
    case v1::DECODE_EXACT:
      return preprocess::DecodeMode::kExact;
    case v1::DECODE_FAST:
      return preprocess::DecodeMode::kFast;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("preprocess.decode: unknown decode mode ", mode,
                   "; expected DECODE_SERVER_DEFAULT (0), DECODE_EXACT (1) or DECODE_FAST (2)"));
}

absl::StatusOr<preprocess::PreprocessOptions> ToPreprocessOptions(
    const v1::Preprocess& p, preprocess::DecodeMode default_decode) {
  preprocess::PreprocessOptions options;
  ASSIGN_OR_RETURN(options.decode, ToDecodeMode(p.decode(), default_decode));
  switch (p.mode()) {
    case v1::RESIZE_FIXED:
      options.mode = preprocess::ResizeMode::kFixed;
      break;
    case v1::RESIZE_SHORTER_SIDE_CENTER_CROP:
      options.mode = preprocess::ResizeMode::kShorterSideCenterCrop;
      break;
    case v1::RESIZE_KEEP_ASPECT:
      options.mode = preprocess::ResizeMode::kKeepAspect;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("preprocess.mode: unknown resize mode ", p.mode()));
  }
  RETURN_IF_ERROR(pipeline::CheckRequestedSides(p.height(), p.width()));
  options.height = static_cast<int>(p.height());
  options.width = static_cast<int>(p.width());
  options.max_patches = static_cast<int>(std::min<uint32_t>(p.max_patches(), 1 << 30));
  return options;
}

// Everything of the settings but the outputs, checked in the order of the fields.
absl::Status FillSettings(int dtype, int priority, const v1::Preprocess& preprocess,
                          bool l2_normalize, const pipeline::RequestLimits& limits,
                          pipeline::EmbedSettings& settings) {
  ASSIGN_OR_RETURN(settings.dtype, ToDType(dtype));
  ASSIGN_OR_RETURN(settings.priority, ToTaskPriority(priority));
  ASSIGN_OR_RETURN(settings.preprocess, ToPreprocessOptions(preprocess, limits.default_decode));
  RETURN_IF_ERROR(preprocess::ValidateOptions(settings.preprocess, limits.geometry));
  settings.l2_normalize = l2_normalize;
  return absl::OkStatus();
}

// Image `index` of a request, checked, into `job`.
absl::Status AddJobImage(const v1::Image& image, int index, pipeline::EmbedJob& job) {
  ASSIGN_OR_RETURN(pipeline::JobImage job_image, ToJobImage(image, index));
  RETURN_IF_ERROR(pipeline::CheckImageIdLength(index, job_image.id.size()));
  job.images.push_back(job_image);
  return absl::OkStatus();
}

v1::DType ToProtoDType(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return v1::FLOAT16;
    case DType::kBFloat16:
      return v1::BFLOAT16;
    case DType::kInt8:
      return v1::INT8;
    case DType::kUint8:
      return v1::UINT8;
    case DType::kBinary:
      return v1::BINARY;
    case DType::kFloat32:
      break;
  }
  return v1::FLOAT32;
}

// The request's intermediate layers as absolute block indices, in the order asked (the official
// convention: a negative index counts from the end; last_layers n = the last n blocks).
template <typename Request>
absl::StatusOr<LayerSelection> ToLayerSelection(const Request& request,
                                                const pipeline::ModelShape& model) {
  LayerSelection selection;
  selection.norm = !request.has_layer_norm() || request.layer_norm();
  const int depth = model.depth;
  if (request.layers_size() == 0 && request.last_layers() == 0) {
    if (request.has_layer_norm()) {
      return absl::InvalidArgumentError("layer_norm: set without layers or last_layers");
    }
    return selection;
  }
  if (request.layers_size() > 0 && request.last_layers() > 0) {
    return absl::InvalidArgumentError(
        "layers, last_layers: set block indices or the last n blocks, not both");
  }
  if (!model.serves_layers) {
    return absl::FailedPreconditionError(
        "layers, last_layers: this model's export has no forward_layers (intermediate "
        "layers); export it again with this version's python -m model.export");
  }
  if (request.last_layers() > static_cast<uint32_t>(depth)) {
    return absl::InvalidArgumentError(absl::StrCat("last_layers: ", request.last_layers(),
                                                   " is above the model's depth of ", depth));
  }
  const int last = static_cast<int>(request.last_layers());
  for (int layer = depth - last; last > 0 && layer < depth; ++layer) {
    selection.indices.push_back(layer);
  }
  if (request.layers_size() > depth) {
    return absl::InvalidArgumentError(absl::StrCat("layers: ", request.layers_size(),
                                                   " indices, above the model's depth of ", depth));
  }
  for (int i = 0; i < request.layers_size(); ++i) {
    const int asked = request.layers(i);
    const int layer = asked < 0 ? depth + asked : asked;
    if (layer < 0 || layer >= depth) {
      return absl::InvalidArgumentError(
          absl::StrCat("layers[", i, "]: block ", asked, " is outside the model's ", depth,
                       " blocks (0..", depth - 1, " or -", depth, "..-1)"));
    }
    const auto seen = std::find(selection.indices.begin(), selection.indices.end(), layer);
    if (seen != selection.indices.end()) {
      return absl::InvalidArgumentError(absl::StrCat("layers[", i, "]: block ", layer,
                                                     " repeats layers[",
                                                     seen - selection.indices.begin(), "]"));
    }
    selection.indices.push_back(layer);
  }
  return selection;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  // absl::StatusCode values are the canonical gRPC codes.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::StatusOr<pipeline::EmbedJob> ToEmbedJob(std::shared_ptr<const v1::EmbedRequest> request,
                                              const pipeline::RequestLimits& limits) {
  RETURN_IF_ERROR(pipeline::CheckImageCount(request->images_size(), limits));
  RETURN_IF_ERROR(pipeline::CheckRequestIdLength(request->request_id().size()));
  pipeline::EmbedJob job;
  ASSIGN_OR_RETURN(job.settings.layers, ToLayerSelection(*request, limits.model));
  ASSIGN_OR_RETURN(job.settings.outputs, ToOutputSet(request->outputs()));
  RETURN_IF_ERROR(FillSettings(request->dtype(), request->priority(), request->preprocess(),
                               request->l2_normalize(), limits, job.settings));
  job.images.reserve(request->images_size());
  for (int i = 0; i < request->images_size(); ++i) {
    RETURN_IF_ERROR(AddJobImage(request->images(i), i, job));
  }
  job.request_id = request->request_id();
  job.model_name = request->model();
  job.received_bytes = static_cast<int64_t>(request->ByteSizeLong());
  job.owner = std::move(request);
  return job;
}

absl::StatusOr<pipeline::EmbedJob> ToEmbedJob(std::shared_ptr<const v1::EmbedDenseRequest> request,
                                              const pipeline::RequestLimits& limits) {
  if (!request->has_image()) {
    return absl::InvalidArgumentError("image: no image in the request");
  }
  RETURN_IF_ERROR(pipeline::CheckRequestIdLength(request->request_id().size()));
  pipeline::EmbedJob job;
  ASSIGN_OR_RETURN(job.settings.layers, ToLayerSelection(*request, limits.model));
  job.settings.outputs.patch_tokens = true;
  RETURN_IF_ERROR(FillSettings(request->dtype(), request->priority(), request->preprocess(),
                               request->l2_normalize(), limits, job.settings));
  RETURN_IF_ERROR(AddJobImage(request->image(), 0, job));
  job.request_id = request->request_id();
  job.model_name = request->model();
  job.received_bytes = static_cast<int64_t>(request->ByteSizeLong());
  job.owner = std::move(request);
  return job;
}

v1::EmbedResponse ToEmbedResponse(pipeline::EmbedResult&& result) {
  v1::EmbedResponse response;
  response.set_request_id(std::move(result.request_id));
  response.set_model(std::move(result.export_id));
  response.set_model_name(std::move(result.model_name));
  v1::Timing* timing = response.mutable_timing();
  timing->set_preprocess_seconds(result.timing.preprocess_seconds);
  timing->set_queue_seconds(result.timing.queue_seconds);
  timing->set_inference_seconds(result.timing.inference_seconds);
  timing->set_batch_size(static_cast<uint32_t>(result.timing.batch_size));
  for (pipeline::ImageEmbedding& image : result.embeddings) {
    v1::Embedding* embedding = response.add_embeddings();
    embedding->set_id(std::move(image.id));
    MoveToProto(std::move(image.result), embedding);
  }
  return response;
}

void MoveToProto(TensorData&& data, v1::Tensor* tensor) {
  tensor->set_dtype(ToProtoDType(data.dtype));
  for (int64_t dim : data.shape) tensor->add_shape(dim);
  tensor->set_data(std::move(data.data));
  tensor->mutable_scales()->Add(data.scales.begin(), data.scales.end());
}

void MoveToProto(EmbeddingResult&& result, v1::Embedding* embedding) {
  if (result.cls) MoveToProto(*std::move(result.cls), embedding->mutable_cls());
  if (result.pooled) MoveToProto(*std::move(result.pooled), embedding->mutable_pooled());
  if (result.registers) MoveToProto(*std::move(result.registers), embedding->mutable_registers());
  if (result.patch_tokens) {
    MoveToProto(*std::move(result.patch_tokens), embedding->mutable_patch_tokens());
  }
  embedding->set_grid_height(static_cast<uint32_t>(result.grid_height));
  embedding->set_grid_width(static_cast<uint32_t>(result.grid_width));
  for (LayerResult& layer : result.layers) {
    v1::LayerEmbedding* out = embedding->add_layers();
    out->set_layer(layer.layer);
    if (layer.cls) MoveToProto(*std::move(layer.cls), out->mutable_cls());
    if (layer.pooled) MoveToProto(*std::move(layer.pooled), out->mutable_pooled());
    if (layer.registers) MoveToProto(*std::move(layer.registers), out->mutable_registers());
    if (layer.patch_tokens)
      MoveToProto(*std::move(layer.patch_tokens), out->mutable_patch_tokens());
  }
}

v1::ModelInfo MakeModelInfo(const registry::ModelDescription& description) {
  const model::ModelMetadata& m = description.metadata;
  const pipeline::RequestLimits& limits = description.limits;
  const CpuFeatures& cpu = description.cpu;
  v1::ModelInfo info;
  info.set_name(description.name);
  info.set_variant(m.variant);
  info.set_embed_dim(m.embed_dim);
  info.set_patch_size(m.patch_size);
  info.set_num_registers(m.num_registers);
  info.set_default_height(m.default_height);
  info.set_default_width(m.default_width);
  for (float v : m.image_mean) info.add_image_mean(v);
  for (float v : m.image_std) info.add_image_std(v);
  for (v1::DType d : {v1::FLOAT32, v1::FLOAT16, v1::BFLOAT16, v1::INT8, v1::UINT8, v1::BINARY}) {
    info.add_dtypes(d);
  }
  info.set_model_dtype(m.compute_dtype);
  info.set_export_dtype(m.dtype);
  for (const std::string& feature : cpu.features) info.add_cpu_features(feature);
  info.set_cpu_model(cpu.model);
  info.set_untrained(m.untrained);
  info.set_weights_sha256(m.weights_sha256);
  info.set_weights_dataset(m.weights_dataset);
  info.set_depth(m.depth);
  info.set_num_heads(m.num_heads);
  info.set_device(description.device);
  v1::Limits* l = info.mutable_limits();
  l->set_max_images_per_request(limits.max_images_per_request);
  l->set_max_image_bytes(limits.image.max_image_bytes);
  l->set_max_pixels(limits.image.max_pixels);
  l->set_min_image_side(limits.image.min_image_side);
  l->set_max_patches(limits.geometry.max_patches);
  l->set_max_receive_message_bytes(limits.max_receive_message_bytes);
  info.set_default_decode(
      limits.default_decode == preprocess::DecodeMode::kFast ? v1::DECODE_FAST : v1::DECODE_EXACT);
  return info;
}

}  // namespace dinov3::service
