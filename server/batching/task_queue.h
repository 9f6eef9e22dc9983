// A bounded FIFO of EmbedTasks served by worker threads, each running batches through a
// BatchRunner. The interim scheduler until the dynamic micro-batcher: a worker takes the oldest
// task plus the queued tasks of the same output shape, up to max_batch_size, without waiting.
//
// Ownership (TensorFlow Serving's Schedule): Schedule takes the task only when it returns OK;
// on error the caller keeps it. Never blocks. Tasks that are cancelled or past their deadline
// when dequeued are finished with CANCELLED / DEADLINE_EXCEEDED without reaching the runner.
// Shutdown stops intake, lets workers finish running batches, and finishes every waiting task
// with UNAVAILABLE. Thread-safe.
#ifndef DINOV3_SERVER_BATCHING_TASK_QUEUE_H_
#define DINOV3_SERVER_BATCHING_TASK_QUEUE_H_

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/batching/task.h"

namespace dinov3::batching {

struct TaskQueueOptions {
  int max_queue_size = 256;  // waiting images; beyond it Schedule fails RESOURCE_EXHAUSTED
  int max_batch_size = 8;    // images per runner call
  int num_workers = 1;       // threads calling the runner
};

class TaskQueue {
 public:
  // `runner` must outlive the queue.
  TaskQueue(const TaskQueueOptions& options, BatchRunner* runner);
  ~TaskQueue();  // Shutdown()

  absl::Status Schedule(std::unique_ptr<EmbedTask>& task);
  void Shutdown();
  int size() const;

 private:
  void WorkerLoop();
  bool HasWorkOrShutdown() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pops the next batch; tasks found cancelled or expired go to `dead` instead.
  TaskBatch NextBatch(TaskBatch& dead) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const TaskQueueOptions options_;
  BatchRunner* const runner_;
  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<EmbedTask>> tasks_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_;
};

}  // namespace dinov3::batching

#endif  // DINOV3_SERVER_BATCHING_TASK_QUEUE_H_
