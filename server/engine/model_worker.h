// A model instance on one device that runs batches of EmbedTasks: builds each image's input
// tensor (resize + normalise on the device), stacks them, runs the model runtime's forward and
// finishes every task with its encoded outputs, or every task with the same error.
//
// Thread-safety: Run may be called from several threads; each call owns its batch. The runtime
// must outlive the worker.
#ifndef DINOV3_SERVER_ENGINE_MODEL_WORKER_H_
#define DINOV3_SERVER_ENGINE_MODEL_WORKER_H_

#include "model/runtime/model_runtime.h"
#include "server/batching/task.h"
#include "server/engine/image_tensor.h"

namespace dinov3::engine {

class ModelWorker : public batching::BatchRunner {
 public:
  explicit ModelWorker(const model::ModelRuntime* runtime);

  // All tasks in `batch` must share plan.out_height x plan.out_width.
  void Run(batching::TaskBatch batch) override;

 private:
  absl::Status RunOrError(batching::TaskBatch& batch);

  const model::ModelRuntime* const runtime_;
  const Normalization norm_;
};

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_MODEL_WORKER_H_
