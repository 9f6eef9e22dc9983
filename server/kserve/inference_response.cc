// The response half of inference_tensors.h: EmbedResponse to output tensors, ModelMetadata.
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/kserve/float_convert.h"
#include "server/kserve/inference_tensors.h"
#include "server/service/proto_conversion.h"

namespace dinov3::kserve {
namespace {

const char* OutputName(v1::Output output) {
  switch (output) {
    case v1::POOLED:
      return "POOLED";
    case v1::PATCH_TOKENS:
      return "PATCH_TOKENS";
    case v1::REGISTERS:
      return "REGISTERS";
    default:
      break;
  }
  return "CLS";
}

v1::Tensor* TensorOf(v1::Embedding& embedding, v1::Output output) {
  switch (output) {
    case v1::CLS:
      return embedding.has_cls() ? embedding.mutable_cls() : nullptr;
    case v1::POOLED:
      return embedding.has_pooled() ? embedding.mutable_pooled() : nullptr;
    case v1::PATCH_TOKENS:
      return embedding.has_patch_tokens() ? embedding.mutable_patch_tokens() : nullptr;
    case v1::REGISTERS:
      return embedding.has_registers() ? embedding.mutable_registers() : nullptr;
    default:
      break;
  }
  return nullptr;
}

// Every image's tensor of one output (shape checked alike, in the run's dtype), stacked into
// one [N, ...] tensor in the entry's dtype. Takes (and frees) each image's data.
absl::StatusOr<OutputTensor> Stack(v1::EmbedResponse& response, const OutputPlan::Entry& entry,
                                   DType run_dtype) {
  OutputTensor out;
  out.name = OutputName(entry.output);
  out.datatype = DatatypeName(entry.dtype);
  const int n = response.embeddings_size();
  std::vector<v1::Tensor*> tensors;
  tensors.reserve(n);
  for (v1::Embedding& embedding : *response.mutable_embeddings()) {
    v1::Tensor* tensor = TensorOf(embedding, entry.output);
    if (tensor == nullptr || tensor->dtype() != service::ToProtoDType(run_dtype) ||
        (!tensors.empty() &&
         !std::equal(tensor->shape().begin(), tensor->shape().end(),
                     tensors.front()->shape().begin(), tensors.front()->shape().end()))) {
      return absl::InternalError(absl::StrCat("output ", out.name, ": the images' tensors differ"));
    }
    tensors.push_back(tensor);
  }
  out.shape.push_back(n);
  int64_t elements = 1;
  if (n > 0) {
    for (int64_t dim : tensors.front()->shape()) {
      out.shape.push_back(dim);
      elements *= dim;
    }
  }
  for (const v1::Tensor* tensor : tensors) {
    if (static_cast<int64_t>(tensor->data().size()) != elements * DTypeSize(run_dtype)) {
      return absl::InternalError(absl::StrCat("output ", out.name, ": wrong byte count"));
    }
  }
  if (entry.dtype != run_dtype && run_dtype != DType::kFloat32) {
    return absl::InternalError(absl::StrCat("output ", out.name, ": cannot convert"));
  }
  if (n == 1 && entry.dtype == run_dtype) {
    out.data = std::move(*tensors.front()->mutable_data());
    return out;
  }
  out.data.reserve(static_cast<size_t>(n * elements * DTypeSize(entry.dtype)));
  for (v1::Tensor* tensor : tensors) {
    if (entry.dtype == run_dtype) {
      out.data.append(tensor->data());
    } else {
      AppendConverted(tensor->data(), entry.dtype, &out.data);
    }
    std::string().swap(*tensor->mutable_data());
  }
  return out;
}

}  // namespace

const char* DatatypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return "FP16";
    case DType::kBFloat16:
      return "BF16";
    case DType::kFloat32:
      break;
  }
  return "FP32";
}

absl::StatusOr<InferenceResponse> ToInferenceResponse(v1::EmbedResponse&& response,
                                                      const OutputPlan& plan) {
  InferenceResponse out;
  out.model_name = response.model_name();
  out.model_version = std::string(kModelVersion);  // (assigning the literal: GCC 12 -Wrestrict)
  out.id = std::move(*response.mutable_request_id());
  for (const OutputPlan::Entry& entry : plan.entries) {
    absl::StatusOr<OutputTensor> tensor = Stack(response, entry, plan.run_dtype);
    if (!tensor.ok()) return tensor.status();
    if (entry.output == v1::PATCH_TOKENS && response.embeddings_size() > 0) {
      tensor->parameters["grid_height"] = int64_t{response.embeddings(0).grid_height()};
      tensor->parameters["grid_width"] = int64_t{response.embeddings(0).grid_width()};
    }
    out.outputs.push_back(*std::move(tensor));
  }
  return out;
}

ModelMetadata MakeModelMetadata(const std::string& name, const v1::ModelInfo& info) {
  const int64_t d = info.embed_dim();
  const int64_t r = info.num_registers();
  ModelMetadata m;
  m.name = name;
  m.versions = {kModelVersion};
  m.platform = kPlatform;
  m.inputs = {{kImageInput, "BYTES", {-1}}, {kPixelsInput, "UINT8", {-1, -1, -1, 3}}};
  m.outputs = {{"CLS", "FP32", {-1, d}},
               {"POOLED", "FP32", {-1, d}},
               {"PATCH_TOKENS", "FP32", {-1, -1, d}},
               {"REGISTERS", "FP32", {-1, r, d}}};
  return m;
}

}  // namespace dinov3::kserve
