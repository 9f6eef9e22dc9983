#include "server/engine/model_engine.h"

#include "model/runtime/model_runtime.h"
#include "server/engine/model_worker.h"

namespace dinov3::engine {
namespace {

class LoadedEngine : public ModelEngine {
 public:
  explicit LoadedEngine(std::unique_ptr<model::ModelRuntime> runtime)
      : runtime_(std::move(runtime)), worker_(runtime_.get()) {}

  const model::ModelMetadata& metadata() const override { return runtime_->metadata(); }
  std::string device() const override { return runtime_->device().str(); }
  batching::BatchRunner* runner() override { return &worker_; }

 private:
  std::unique_ptr<model::ModelRuntime> runtime_;
  ModelWorker worker_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ModelEngine>> ModelEngine::Load(const std::string& path,
                                                               const std::string& device) {
  absl::StatusOr<std::unique_ptr<model::ModelRuntime>> runtime =
      model::ModelRuntime::Load(path, device, /*probe=*/false);  // warm-up probes on the worker
  if (!runtime.ok()) return runtime.status();
  return std::make_unique<LoadedEngine>(*std::move(runtime));
}

}  // namespace dinov3::engine
