// The response half of inference_tensors.h: the pipeline's EmbedResult to output tensors,
// ModelMetadata.
#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/kserve/float_convert.h"
#include "server/kserve/inference_tensors.h"

namespace dinov3::kserve {
namespace {

using pipeline::OutputKind;

// Every image's tensor of one output (shape checked alike, in the run's dtype), stacked into
// one [N, ...] tensor in the entry's dtype. Takes (and frees) each image's data.
absl::StatusOr<OutputTensor> Stack(pipeline::EmbedResult& result, const OutputPlan::Entry& entry,
                                   DType run_dtype) {
  OutputTensor out;
  out.name = OutputName(entry.output);
  out.datatype = DatatypeName(entry.dtype);
  const int n = static_cast<int>(result.embeddings.size());
  std::vector<TensorData*> tensors;
  tensors.reserve(n);
  for (pipeline::ImageEmbedding& embedding : result.embeddings) {
    std::optional<TensorData>& tensor = pipeline::TensorOf(embedding.result, entry.output);
    if (!tensor || tensor->dtype != run_dtype ||
        (!tensors.empty() && tensor->shape != tensors.front()->shape)) {
      return absl::InternalError(absl::StrCat("output ", out.name, ": the images' tensors differ"));
    }
    tensors.push_back(&*tensor);
  }
  out.shape.push_back(n);
  int64_t elements = 1;
  if (n > 0) {
    for (int64_t dim : tensors.front()->shape) {
      out.shape.push_back(dim);
      elements *= dim;
    }
  }
  for (const TensorData* tensor : tensors) {
    if (static_cast<int64_t>(tensor->data.size()) != elements * DTypeSize(run_dtype)) {
      return absl::InternalError(absl::StrCat("output ", out.name, ": wrong byte count"));
    }
  }
  if (entry.dtype != run_dtype && run_dtype != DType::kFloat32) {
    return absl::InternalError(absl::StrCat("output ", out.name, ": cannot convert"));
  }
  if (n == 1 && entry.dtype == run_dtype) {
    out.data = std::move(tensors.front()->data);
    return out;
  }
  out.data.reserve(static_cast<size_t>(n * elements * DTypeSize(entry.dtype)));
  for (TensorData* tensor : tensors) {
    if (entry.dtype == run_dtype) {
      out.data.append(tensor->data);
    } else {
      AppendConverted(tensor->data, entry.dtype, &out.data);
    }
    std::string().swap(tensor->data);
  }
  return out;
}

}  // namespace

const char* OutputName(OutputKind output) {
  switch (output) {
    case OutputKind::kPooled:
      return "POOLED";
    case OutputKind::kPatchTokens:
      return "PATCH_TOKENS";
    case OutputKind::kRegisters:
      return "REGISTERS";
    case OutputKind::kCls:
      break;
  }
  return "CLS";
}

const char* DatatypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat16:
      return "FP16";
    case DType::kBFloat16:
      return "BF16";
    default:  // kFloat32 (the compact dtypes are not offered over the OIP)
      break;
  }
  return "FP32";
}

absl::StatusOr<InferenceResponse> ToInferenceResponse(pipeline::EmbedResult&& result,
                                                      const OutputPlan& plan) {
  InferenceResponse out;
  out.model_name = result.model_name;
  out.model_version = std::string(kModelVersion);  // (assigning the literal: GCC 12 -Wrestrict)
  out.id = std::move(result.request_id);
  for (const OutputPlan::Entry& entry : plan.entries) {
    absl::StatusOr<OutputTensor> tensor = Stack(result, entry, plan.run_dtype);
    if (!tensor.ok()) return tensor.status();
    if (entry.output == OutputKind::kPatchTokens && !result.embeddings.empty()) {
      const EmbeddingResult& first = result.embeddings.front().result;
      tensor->parameters["grid_height"] = int64_t{first.grid_height};
      tensor->parameters["grid_width"] = int64_t{first.grid_width};
    }
    out.outputs.push_back(*std::move(tensor));
  }
  return out;
}

ModelMetadata MakeModelMetadata(const std::string& name,
                                const registry::ModelDescription& description) {
  const int64_t d = description.metadata.embed_dim;
  const int64_t r = description.metadata.num_registers;
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
