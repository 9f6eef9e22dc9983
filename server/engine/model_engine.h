// The torch-free face of the engine for the service: loads a model onto a device and offers
// its metadata and a BatchRunner that runs task batches on it. Keeps LibTorch headers out of
// everything that includes it.
#ifndef DINOV3_SERVER_ENGINE_MODEL_ENGINE_H_
#define DINOV3_SERVER_ENGINE_MODEL_ENGINE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "model/runtime/model_metadata.h"
#include "server/batching/task.h"

namespace dinov3::engine {

class ModelEngine {
 public:
  // Loads `path` on `device` ("cpu", "cuda", "cuda:N"); errors as ModelRuntime::Load.
  static absl::StatusOr<std::unique_ptr<ModelEngine>> Load(const std::string& path,
                                                           const std::string& device);
  virtual ~ModelEngine() = default;

  virtual const model::ModelMetadata& metadata() const = 0;
  virtual std::string device() const = 0;
  // Valid as long as the engine; thread-safe.
  virtual batching::BatchRunner* runner() = 0;
};

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_MODEL_ENGINE_H_
