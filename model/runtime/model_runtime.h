// Loads an exported DINOv3 TorchScript archive and runs its forward pass on one device.
//
// Contract (DESIGN.md section 4): the archive's forward takes pixel_values [B,3,H,W] (float,
// normalised, H and W multiples of the patch size) and returns a dict with `cls` [B,D],
// `registers` [B,R,D] and `patch_tokens` [B,(H/p)*(W/p),D]; the archive carries `dinov3.json`.
// Exports since intermediate layers were added also have forward_layers(pixel_values, layers,
// norm) (model/dinov3/vit.py), which adds `layer_cls` [B,L,D], `layer_registers` [B,L,R,D] and
// `layer_patch_tokens` [B,L,N,D] for the L blocks asked for.
//
// Errors are absl::Status, never exceptions: NotFound (no file), InvalidArgument (not a
// TorchScript archive, not a DINOv3 export, bad metadata, bad input), FailedPrecondition
// (metadata and module disagree, device not available), Internal (forward failed).
// Thread-safety: after Load, Forward may be called from several threads at once.
#ifndef DINOV3_MODEL_RUNTIME_MODEL_RUNTIME_H_
#define DINOV3_MODEL_RUNTIME_MODEL_RUNTIME_H_

#include <torch/script.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "model/runtime/model_metadata.h"

namespace dinov3::model {

// Final-normed token groups of one forward pass, on the runtime's device, in the compute dtype.
struct ModelOutputs {
  torch::Tensor cls;           // [B, D]
  torch::Tensor registers;     // [B, R, D]
  torch::Tensor patch_tokens;  // [B, h*w, D], row-major over the patch grid
  // Forward with layers only (undefined otherwise): the blocks' tokens, final-normed if asked.
  torch::Tensor layer_cls;           // [B, L, D]
  torch::Tensor layer_registers;     // [B, L, R, D]
  torch::Tensor layer_patch_tokens;  // [B, L, h*w, D]
};

class ModelRuntime {
 public:
  // Loads `path` onto `device` ("cpu", "cuda", "cuda:N"), validates its metadata and, with
  // `probe`, checks with a one-patch forward on this thread that the module's output shapes
  // match the metadata (every Forward checks them too). A server passes probe=false and warms
  // up on its worker thread instead: LibTorch's OpenMP pool belongs to the calling thread and
  // an idle pool spins, stealing cores from the thread that does the real work.
  //
  // `compute_dtype` ("float32", "bfloat16", "float16"; "" = the export's own) converts the
  // module's parameters to that dtype after loading; buffers (the RoPE periods) stay float32,
  // as the exporter leaves them, so the result equals an export made in that dtype.
  // metadata().compute_dtype tells which dtype the module computes in. An int8 export
  // (exporter.py: int8 Linear layers, the rest float32) loads on CPU only and takes no
  // compute dtype (FailedPrecondition on CUDA, InvalidArgument with one).
  static absl::StatusOr<std::unique_ptr<ModelRuntime>> Load(const std::string& path,
                                                            absl::string_view device = "cpu",
                                                            bool probe = true,
                                                            absl::string_view compute_dtype = "");

  // The metadata of the archive at `path`, without loading its module (NotFound, or
  // InvalidArgument naming the file and what is wrong, as Load).
  static absl::StatusOr<ModelMetadata> ReadMetadata(const std::string& path);

  const ModelMetadata& metadata() const { return metadata_; }
  const torch::Device& device() const { return device_; }

  // Runs the model in inference mode. `pixel_values` may live on any device; it is moved to
  // this runtime's device. Rejects inputs that break the contract above with InvalidArgument.
  // With `layers` (0-based block indices below depth), runs forward_layers with them and
  // `layer_norm` instead: FailedPrecondition when the export has no forward_layers
  // (metadata().has_forward_layers), InvalidArgument for an index out of range.
  absl::StatusOr<ModelOutputs> Forward(const torch::Tensor& pixel_values,
                                       absl::Span<const int> layers = {},
                                       bool layer_norm = true) const;

 private:
  ModelRuntime(torch::jit::Module module, ModelMetadata metadata, torch::Device device);

  absl::Status CheckInput(const torch::Tensor& pixel_values) const;

  // TorchScript's forward is not declared const, but running it does not change the module.
  mutable torch::jit::Module module_;
  const ModelMetadata metadata_;
  const torch::Device device_;
};

// The model's own error line (e.g. "RuntimeError: ...") that a failed Forward's status carries
// as a payload, for the server log only ("" when there is none). Never send it to a client:
// it is model internals.
std::string ErrorCause(const absl::Status& status);

}  // namespace dinov3::model

#endif  // DINOV3_MODEL_RUNTIME_MODEL_RUNTIME_H_
