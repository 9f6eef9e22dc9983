// One model instance on one device, as the batcher's BatchRunner (server/batching/task.h): it
// builds each image's input tensor (resize + normalise on the device) unless the preprocess pool
// prepared it (EmbedTask::input), stacks them, runs the model runtime's forward and finishes
// every task with its encoded outputs or an error.
//
// Threads: the batcher calls PrepareThread once and then Run for each batch, all on the
// instance's own dispatch thread. PrepareThread sets that thread's intra-op thread count
// (LibTorch's OpenMP pool is per calling thread; torch ops must run on no other thread), takes
// the instance's CUDA stream, on which all of its device work then runs, and warms up. Different
// workers may run concurrently on their own threads; a worker is not thread-safe otherwise.
//
// Errors: every task of a batch is finished exactly once. A failed forward or other exception
// gives INTERNAL ("inference failed: " + one line, no internals); running out of device memory
// gives RESOURCE_EXHAUSTED. A failed batch is retried in halves down to single images first
// (batch_splitter.h), so only the images that fail on their own get the error. The worker
// keeps serving after errors. The runtime must outlive the worker.
#ifndef DINOV3_SERVER_ENGINE_MODEL_WORKER_H_
#define DINOV3_SERVER_ENGINE_MODEL_WORKER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "model/runtime/model_runtime.h"
#include "server/batching/task.h"
#include "server/engine/image_tensor.h"

namespace dinov3::engine {

struct WorkerOptions {
  int intra_op_threads = 0;       // set on the dispatch thread by PrepareThread; 0: unchanged
  int warmup_max_batch_size = 1;  // warm-up forwards: batch 1 and this, twice each
  // Optional; called on Run's thread on transitions only: false once kMaxConsecutiveFailures
  // batches in a row have failed on every image AND a synthetic image fails too (so inputs
  // the model cannot take never make an instance unhealthy), true at the next batch with an
  // image that succeeds after that.
  std::function<void(bool healthy)> on_health_change;
  // Optional; EngineOptions::on_batch for this worker.
  std::function<void(const std::string& device, int images, double seconds)> on_batch;
};

class ModelWorker : public batching::BatchRunner {
 public:
  ModelWorker(const model::ModelRuntime* runtime, WorkerOptions options);

  // Errors: a failed warm-up forward's, naming the batch (RESOURCE_EXHAUSTED when out of device
  // memory), INTERNAL for an exception, FailedPrecondition for CUDA in a build without it.
  absl::Status PrepareThread() override;
  // All tasks in `batch` must share plan.out_height x plan.out_width.
  void Run(batching::TaskBatch batch) override;

  int consecutive_failures() const { return consecutive_failures_; }
  bool healthy() const { return healthy_; }

 private:
  using TaskSpan = absl::Span<const std::unique_ptr<batching::EmbedTask>>;

  absl::Status WarmUp();
  // One forward of `batch` synthetic grey images at the model's default size; `purpose` names
  // it in the error.
  absl::Status ForwardSynthetic(int batch, absl::string_view purpose);
  // ForwardSynthetic(1) with its exceptions caught: does the instance still work?
  absl::Status Probe();
  // Runs `tasks` as one forward and finishes them all on success. Otherwise finishes none and
  // returns ResourceExhausted (out of device memory) or Internal.
  absl::Status RunTasks(TaskSpan tasks, absl::Time start);
  absl::Status RunTasksOrThrow(TaskSpan tasks, absl::Time start);
  // `answered`: at least one image of the batch succeeded.
  void RecordOutcome(bool answered);

  const model::ModelRuntime* const runtime_;
  const WorkerOptions options_;
  const Normalization norm_;
  std::optional<c10::Stream> stream_;  // CUDA instances, from PrepareThread on
  int consecutive_failures_ = 0;
  bool healthy_ = true;
};

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_MODEL_WORKER_H_
