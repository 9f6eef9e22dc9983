// Turns one image's slice of the model outputs into wire-ready EmbeddingResult tensors:
// pooled = mean of the patch tokens, optional L2 normalisation of cls, pooled and each patch
// token (all computed in float32), then conversion to the requested dtype (float, or the
// compact kInt8 / kUint8 / kBinary per-vector encodings of server/common/types.h) and a single
// copy of the bytes into the result (row-major, little-endian; assumes a little-endian host).
#ifndef DINOV3_SERVER_ENGINE_OUTPUT_ENCODER_H_
#define DINOV3_SERVER_ENGINE_OUTPUT_ENCODER_H_

#include <torch/torch.h>

#include "server/common/types.h"

namespace dinov3::engine {

struct ImageOutputs {
  torch::Tensor cls;           // [D]
  torch::Tensor registers;     // [R, D]
  torch::Tensor patch_tokens;  // [grid_height * grid_width, D]
};

struct EncodeOptions {
  OutputSet outputs;
  DType dtype = DType::kFloat32;
  bool l2_normalize = false;
};

// Tensors may be on any device and in any floating dtype.
EmbeddingResult EncodeOutputs(const ImageOutputs& outputs, const EncodeOptions& options,
                              int grid_height, int grid_width);

// Block `layer`'s outputs of one image, encoded as EncodeOutputs encodes the final ones.
LayerResult EncodeLayer(int layer, const ImageOutputs& outputs, const EncodeOptions& options);

// Copies a tensor to host bytes of `dtype` (helper, exposed for tests).
TensorData ToTensorData(const torch::Tensor& tensor, DType dtype);

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_OUTPUT_ENCODER_H_
