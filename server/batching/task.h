// The unit of work that flows from the service to a device worker: one preprocessed image plus
// what to compute, and the completion callback that answers it (DESIGN.md §2).
//
// Ownership: whoever holds the unique_ptr<EmbedTask> owns it; `done` must be called exactly
// once, by whoever finishes the task (with results, an error, on cancellation, deadline or
// shutdown). Torch- and gRPC-free.
#ifndef DINOV3_SERVER_BATCHING_TASK_H_
#define DINOV3_SERVER_BATCHING_TASK_H_

#include <functional>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/types.h"

namespace dinov3::batching {

struct EmbedTask {
  RgbImage image;  // empty once `input` is prepared
  ResizePlan plan;
  // The normalised model input, [3, plan.out_height, plan.out_width] float32 (CHW, row-major),
  // when the preprocess pool prepared it (PrepareInputFn); empty: the instance builds it from
  // `image` on its device.
  std::vector<float> input;
  OutputSet outputs;
  DType dtype = DType::kFloat32;
  bool l2_normalize = false;
  LayerSelection layers;  // intermediate layers, besides the final outputs
  int priority = 0;       // larger is more urgent (API: LOW -1, NORMAL 0, HIGH 1)
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> is_cancelled;  // may be empty; must be cheap and thread-safe
  absl::Time enqueue_time;             // set by the queue
  int batch_size = 0;                  // set by the batcher: images in the batch it ran in
  absl::AnyInvocable<void(absl::StatusOr<EmbeddingResult>) &&> done;

  // Calls `done` with `result` and empties it; finishing a finished task does nothing.
  void Finish(absl::StatusOr<EmbeddingResult> result) {
    if (!done) return;
    auto callback = std::move(done);
    done = nullptr;
    std::move(callback)(std::move(result));
  }
  bool finished() const { return !done; }
};

using TaskBatch = std::vector<std::unique_ptr<EmbedTask>>;

// Work on a task that needs no device, done by the preprocess pool before the task is queued
// (the engine decides what: ModelEngine::PrepareInput). Thread-safe; an error finishes the task.
using PrepareInputFn = std::function<absl::Status(EmbedTask&)>;

// One model instance as the batcher sees it. The batcher gives each runner its own dispatch
// thread and calls every method of that runner on that thread only: PrepareThread once (set
// thread-local state such as the intra-op thread count, warm up; an error keeps the instance
// out of service), then Run for each batch. Run must finish every task of the batch.
class BatchRunner {
 public:
  virtual ~BatchRunner() = default;
  virtual absl::Status PrepareThread() { return absl::OkStatus(); }
  // All tasks share out_height x out_width, dtype and layers.
  virtual void Run(TaskBatch batch) = 0;
};

}  // namespace dinov3::batching

#endif  // DINOV3_SERVER_BATCHING_TASK_H_
