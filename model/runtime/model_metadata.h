// Metadata of an exported DINOv3 TorchScript archive (the `dinov3.json` extra file written by
// model/dinov3/exporter.py; DESIGN.md section 4).
//
// Parsing is pure and torch-free, so code that only needs to describe the model (the service's
// GetModelInfo, logs) can include this header without pulling in LibTorch.
#ifndef DINOV3_MODEL_RUNTIME_MODEL_METADATA_H_
#define DINOV3_MODEL_RUNTIME_MODEL_METADATA_H_

#include <array>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dinov3::model {

// The archive extra file that carries the metadata.
inline constexpr char kMetadataFileName[] = "dinov3.json";
// The metadata format this runtime understands.
inline constexpr int kMetadataFormatVersion = 1;

struct ModelMetadata {
  std::string variant;  // e.g. "vitl16"
  int embed_dim = 0;    // D
  int patch_size = 0;   // 16 for all released models
  int num_registers = 0;
  int num_heads = 0;
  int depth = 0;           // number of transformer blocks
  std::string ffn;         // "mlp" or "swiglu"
  int default_height = 0;  // default input size of the model (224 x 224)
  int default_width = 0;
  std::array<float, 3> image_mean{};  // RGB normalisation the weights expect
  std::array<float, 3> image_std{};
  std::string weights_dataset;  // "lvd1689m" or "sat493m"
  // Of the exported weights: "float32", "float16", "bfloat16" or "int8" (Linear weights int8,
  // activations quantised per call, everything else float32; CPU only).
  std::string dtype;
  // The dtype the loaded module computes in: `dtype` as parsed; ModelRuntime::Load sets it when
  // asked to compute in another (model.compute_dtype). What logs, metrics and clients are shown.
  std::string compute_dtype;
  std::string source_kind;  // "huggingface", "meta" or "random"
  bool untrained = false;   // true for random weights
  std::string weights_sha256;
  std::string torch_version;  // torch version that exported the archive
  // Whether the module has forward_layers (intermediate layers; exports since it was added):
  // set by ModelRuntime::Load from the module, false from the JSON alone.
  bool has_forward_layers = false;
};

// Parses and validates the JSON text. Errors are InvalidArgument and name the offending field.
absl::StatusOr<ModelMetadata> ParseModelMetadata(absl::string_view json);

// One human-readable line: variant, depth, dims, compute dtype (and the export's when it
// differs), weights source and hash prefix.
std::string DescribeModel(const ModelMetadata& metadata);

}  // namespace dinov3::model

#endif  // DINOV3_MODEL_RUNTIME_MODEL_METADATA_H_
