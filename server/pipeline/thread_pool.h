// A fixed set of threads running jobs from a bounded FIFO (the preprocess pool of DESIGN.md §2).
// TrySubmit never blocks: it returns false when the backlog is full or the pool is stopping, and
// then the caller still owns the job. The destructor runs every accepted job, then joins.
// Thread-safe.
#ifndef DINOV3_SERVER_PIPELINE_THREAD_POOL_H_
#define DINOV3_SERVER_PIPELINE_THREAD_POOL_H_

#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace dinov3::pipeline {

class ThreadPool {
 public:
  using Job = absl::AnyInvocable<void() &&>;

  ThreadPool(int num_threads, int max_backlog);
  ~ThreadPool();

  // Queues `job` and returns true, or returns false and leaves `job` untouched.
  bool TrySubmit(Job& job);

 private:
  bool HasJobOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Loop();

  const int max_backlog_;
  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_THREAD_POOL_H_
