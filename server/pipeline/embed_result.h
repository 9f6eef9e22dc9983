// The protocol-free answer of the pipeline to an EmbedJob: per image (in the job's order) its id
// and EmbeddingResult (common/types.h: the encoded tensors, grid size and timings), and the
// request's timings and model. Each front door maps it onto its own protocol's answer, moving
// the tensors' bytes (never copying them). Plain data.
#ifndef DINOV3_SERVER_PIPELINE_EMBED_RESULT_H_
#define DINOV3_SERVER_PIPELINE_EMBED_RESULT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "server/common/types.h"

namespace dinov3::pipeline {

// One of the token groups a request may ask for (OutputSet as an ordered value).
enum class OutputKind { kCls, kPooled, kPatchTokens, kRegisters };

struct ImageEmbedding {
  std::string id;  // the job image's id
  EmbeddingResult result;
};

// The slowest image's times; batch_size is the largest batch an image of the request ran in.
struct RequestTiming {
  double preprocess_seconds = 0;
  double queue_seconds = 0;
  double inference_seconds = 0;
  int batch_size = 0;
};

struct EmbedResult {
  std::string request_id;
  std::string model_name;  // the served model's name
  std::string export_id;   // the model export: variant@hash
  RequestTiming timing;
  std::vector<ImageEmbedding> embeddings;
};

// The tensor of `kind` in `result`: absent when it was not requested.
inline std::optional<TensorData>& TensorOf(EmbeddingResult& result, OutputKind kind) {
  switch (kind) {
    case OutputKind::kPooled:
      return result.pooled;
    case OutputKind::kPatchTokens:
      return result.patch_tokens;
    case OutputKind::kRegisters:
      return result.registers;
    case OutputKind::kCls:
      break;
  }
  return result.cls;
}

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_EMBED_RESULT_H_
