// The dynamic micro-batcher: a BatchPolicy behind one mutex, and one dispatch thread per model
// instance (BatchRunner). Each thread waits until the policy has a ready batch for it (full,
// or the oldest task waited max_queue_delay), runs it, and goes back for the next; with several
// instances the next batch forms while the current one runs. An idle thread also takes what
// is waiting when waiting cannot help: when no image is on its way (callers announce images
// with Expect before decoding them and retire them with Unexpect once scheduled or failed).
//
// Ownership (TensorFlow Serving's Schedule): Schedule takes the task only when it returns OK
// and never blocks. Every accepted task is finished exactly once: by its runner, as CANCELLED /
// DEADLINE_EXCEEDED when it died waiting, or as UNAVAILABLE when shutdown's grace ran out.
// Shutdown(grace): refuse new tasks, keep running what is queued (without waiting for fuller
// batches) until the queue is empty or `grace` has passed, then finish the rest and join.
// Thread-safe (Shutdown too). Options must pass ValidateBatchingOptions. Time comes from
// `clock` (injectable for tests); waits for a batch's delay use real time.
#ifndef DINOV3_SERVER_BATCHING_BATCHER_H_
#define DINOV3_SERVER_BATCHING_BATCHER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/batching/batch_policy.h"
#include "server/batching/task.h"

namespace dinov3::batching {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static const Clock* Get();
};

// Counters for tests, logs and metrics.
struct BatcherStats {
  int64_t batches = 0;
  int64_t images = 0;
  int max_batch_size_seen = 0;
};

class Batcher {
 public:
  // `runners` (one per model instance) and `clock` must outlive the batcher.
  Batcher(const BatchingOptions& options, std::vector<BatchRunner*> runners,
          const Clock* clock = RealClock::Get());
  ~Batcher();  // Shutdown(absl::ZeroDuration())

  // Blocks until every dispatch thread has run its runner's PrepareThread; returns the first
  // error (that runner's thread then serves nothing).
  absl::Status WaitUntilPrepared();

  // `expected`: the task was announced with Expect; it is retired in the same step, whatever
  // the outcome.
  absl::Status Schedule(std::unique_ptr<EmbedTask>& task, bool expected = false);

  // `n` images will be scheduled soon (they are being decoded) / are no longer on their way.
  void Expect(int n);
  void Unexpect(int n);
  void Shutdown(absl::Duration grace);

  int queued() const;
  BatcherStats stats() const;

 private:
  void DispatchLoop(BatchRunner* runner);
  // Forms the next batch for a dispatch thread, waiting as the policy says; empty batch and
  // empty dead list mean: stop.
  BatchPolicy::Decision Next() ABSL_LOCKS_EXCLUDED(mu_);

  const Clock* const clock_;
  std::vector<std::thread> threads_;
  mutable absl::Mutex mu_;
  BatchPolicy policy_ ABSL_GUARDED_BY(mu_);
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on Schedule, Unexpect and Shutdown
  int64_t expected_ ABSL_GUARDED_BY(mu_) = 0;  // images announced but not yet scheduled
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time drain_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  BatcherStats stats_ ABSL_GUARDED_BY(mu_);
  int prepared_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status prepare_error_ ABSL_GUARDED_BY(mu_);
  absl::Mutex shutdown_mu_;  // serialises Shutdown
  bool joined_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace dinov3::batching

#endif  // DINOV3_SERVER_BATCHING_BATCHER_H_
