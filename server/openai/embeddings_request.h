// The body of an OpenAI-compatible POST /v1/embeddings, parsed and checked, with no HTTP types:
//   {"model": NAME, "input": IMAGE | [IMAGE, ...], "encoding_format": "float" | "base64",
//    "output": "cls" | "pooled", "normalize": true | false, "user": ...}
// Each IMAGE is a data URL ("data:image/png;base64,....") or a bare base64 string of an encoded
// image file; http(s) URLs are refused (the server never fetches anything). "model" may be "" or
// absent (the default model). "output" and "normalize" are our extra body fields (the OpenAI
// SDK's extra_body): which DINOv3 vector is "the embedding" (the CLS token by default, or the
// mean of the patch tokens) and whether it is L2-normalised (default true, as OpenAI's
// embeddings are). "dimensions" is refused: DINOv3 is not trained for truncated vectors.
//
// Errors: an EmbeddingsError with the HTTP status (400), the offending parameter ("input[2]")
// and a message naming the problem. A body nested deeper than `max_json_depth` is refused before
// it is turned into values. Thread-safe: plain functions.
#ifndef DINOV3_SERVER_OPENAI_EMBEDDINGS_REQUEST_H_
#define DINOV3_SERVER_OPENAI_EMBEDDINGS_REQUEST_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/variant.h"

namespace dinov3::openai {

enum class EncodingFormat { kFloat, kBase64 };
enum class EmbeddingOutput { kCls, kPooled };

struct EmbeddingsRequest {
  std::string model;                // "" = the default model
  std::vector<std::string> images;  // encoded files, decoded from base64
  EncodingFormat encoding_format = EncodingFormat::kFloat;
  EmbeddingOutput output = EmbeddingOutput::kCls;
  bool normalize = true;
};

struct EmbeddingsError {
  int status = 400;
  std::string param;  // "" when it is the body as a whole
  std::string message;
};

struct EmbeddingsLimits {
  int max_json_depth = 32;
  int max_images = 64;  // limits.max_images_per_request
};

// The request, or what is wrong with it.
absl::variant<EmbeddingsRequest, EmbeddingsError> ParseEmbeddingsRequest(
    absl::string_view body, const EmbeddingsLimits& limits);

}  // namespace dinov3::openai

#endif  // DINOV3_SERVER_OPENAI_EMBEDDINGS_REQUEST_H_
