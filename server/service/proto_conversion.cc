#include "server/service/proto_conversion.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"

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

absl::Status ValidateImage(const v1::Image& image, int index) {
  switch (image.source_case()) {
    case v1::Image::kEncoded:
      return absl::OkStatus();
    case v1::Image::kRaw: {
      absl::StatusOr<preprocess::RawPixelFormat> format = ToRawFormat(image.raw().format());
      if (!format.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("image[", index, "]: ", format.status().message()));
      }
      return absl::OkStatus();
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
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "dtype: unknown dtype ", dtype, "; expected FLOAT32 (0), FLOAT16 (1) or BFLOAT16 (2)"));
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
  constexpr uint32_t kMaxSide = 1 << 14;
  if (p.height() > kMaxSide || p.width() > kMaxSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocess: height and width must be at most ", kMaxSide));
  }
  options.height = static_cast<int>(p.height());
  options.width = static_cast<int>(p.width());
  options.max_patches = static_cast<int>(std::min<uint32_t>(p.max_patches(), 1 << 30));
  return options;
}

// The format of a raw image whose sides fit in int.
absl::StatusOr<preprocess::RawPixelFormat> CheckedRawFormat(const v1::RawImage& raw) {
  ASSIGN_OR_RETURN(preprocess::RawPixelFormat format, ToRawFormat(raw.format()));
  constexpr uint32_t kMaxSide = 1 << 20;
  if (raw.width() > kMaxSide || raw.height() > kMaxSide) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat("raw image ", raw.width(), "x",
                                                              raw.height(),
                                                              " is larger than any limit allows")),
                      kReasonTooLarge);
  }
  return format;
}

}  // namespace

v1::DType ToProtoDType(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return v1::FLOAT16;
    case DType::kBFloat16:
      return v1::BFLOAT16;
    case DType::kFloat32:
      break;
  }
  return v1::FLOAT32;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  // absl::StatusCode values are the canonical gRPC codes.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::StatusOr<EmbedSettings> ParseEmbedRequest(const v1::EmbedRequest& request,
                                                const RequestLimits& limits) {
  if (request.images_size() == 0) {
    return absl::InvalidArgumentError("images: the request has no images");
  }
  if (request.images_size() > limits.max_images_per_request) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "images: ", request.images_size(),
                          " images in one request, above the limit of ",
                          limits.max_images_per_request, " (max_images_per_request)")),
                      kReasonTooLarge);
  }
  if (request.request_id().size() > kMaxIdBytes) {
    return WithReason(absl::InvalidArgumentError(absl::StrCat(
                          "request_id: ", request.request_id().size(),
                          " bytes, above the limit of ", kMaxIdBytes, " bytes")),
                      kReasonTooLarge);
  }
  EmbedSettings settings;
  ASSIGN_OR_RETURN(settings.outputs, ToOutputSet(request.outputs()));
  ASSIGN_OR_RETURN(settings.dtype, ToDType(request.dtype()));
  ASSIGN_OR_RETURN(settings.priority, ToTaskPriority(request.priority()));
  ASSIGN_OR_RETURN(settings.preprocess,
                   ToPreprocessOptions(request.preprocess(), limits.default_decode));
  RETURN_IF_ERROR(preprocess::ValidateOptions(settings.preprocess, limits.geometry));
  for (int i = 0; i < request.images_size(); ++i) {
    RETURN_IF_ERROR(ValidateImage(request.images(i), i));
    if (request.images(i).id().size() > kMaxIdBytes) {
      return WithReason(absl::InvalidArgumentError(absl::StrCat(
                            "image[", i, "]: id is ", request.images(i).id().size(),
                            " bytes, above the limit of ", kMaxIdBytes, " bytes")),
                        kReasonTooLarge);
    }
  }
  return settings;
}

absl::StatusOr<preprocess::ImageSize> RequestImageSize(const v1::Image& image,
                                                       const preprocess::ImageLimits& limits) {
  if (image.source_case() == v1::Image::kEncoded) {
    return preprocess::CheckEncodedImage(image.encoded(), limits);
  }
  const v1::RawImage& raw = image.raw();
  ASSIGN_OR_RETURN(preprocess::RawPixelFormat format, CheckedRawFormat(raw));
  const int width = static_cast<int>(raw.width());
  const int height = static_cast<int>(raw.height());
  RETURN_IF_ERROR(preprocess::CheckRawImage(width, height, format, raw.data().size(), limits));
  return preprocess::ImageSize{width, height};
}

absl::StatusOr<preprocess::ReducedImage> DecodeRequestImage(
    const v1::Image& image, const RequestLimits& limits,
    const preprocess::PreprocessOptions& options) {
  if (image.source_case() == v1::Image::kEncoded) {
    return preprocess::DecodeImageFor(image.encoded(), limits.image, options, limits.geometry);
  }
  const v1::RawImage& raw = image.raw();
  ASSIGN_OR_RETURN(preprocess::RawPixelFormat format, CheckedRawFormat(raw));
  ASSIGN_OR_RETURN(RgbImage rgb, preprocess::ConvertRawImage(static_cast<int>(raw.width()),
                                                             static_cast<int>(raw.height()), format,
                                                             raw.data(), limits.image));
  const preprocess::ImageSize size{rgb.width, rgb.height};
  return preprocess::ReducedImage{std::move(rgb), size};
}

void MoveToProto(TensorData&& data, v1::Tensor* tensor) {
  tensor->set_dtype(ToProtoDType(data.dtype));
  for (int64_t dim : data.shape) tensor->add_shape(dim);
  tensor->set_data(std::move(data.data));
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
}

v1::ModelInfo MakeModelInfo(const model::ModelMetadata& m, const RequestLimits& limits,
                            const std::string& device, const CpuFeatures& cpu) {
  v1::ModelInfo info;
  info.set_variant(m.variant);
  info.set_embed_dim(m.embed_dim);
  info.set_patch_size(m.patch_size);
  info.set_num_registers(m.num_registers);
  info.set_default_height(m.default_height);
  info.set_default_width(m.default_width);
  for (float v : m.image_mean) info.add_image_mean(v);
  for (float v : m.image_std) info.add_image_std(v);
  for (v1::DType d : {v1::FLOAT32, v1::FLOAT16, v1::BFLOAT16}) info.add_dtypes(d);
  info.set_model_dtype(m.compute_dtype);
  info.set_export_dtype(m.dtype);
  for (const std::string& feature : cpu.features) info.add_cpu_features(feature);
  info.set_cpu_model(cpu.model);
  info.set_untrained(m.untrained);
  info.set_weights_sha256(m.weights_sha256);
  info.set_weights_dataset(m.weights_dataset);
  info.set_depth(m.depth);
  info.set_num_heads(m.num_heads);
  info.set_device(device);
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
