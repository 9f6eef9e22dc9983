#include "server/pipeline/thread_pool.h"

#include <utility>

namespace dinov3::pipeline {

ThreadPool::ThreadPool(int num_threads, int max_backlog) : max_backlog_(max_backlog) {
  for (int i = 0; i < num_threads; ++i) threads_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
}

bool ThreadPool::TrySubmit(Job& job) {
  absl::MutexLock lock(&mu_);
  if (stopping_ || static_cast<int>(jobs_.size()) >= max_backlog_) return false;
  jobs_.push_back(std::move(job));
  return true;
}

bool ThreadPool::HasJobOrStopping() const { return stopping_ || !jobs_.empty(); }

void ThreadPool::Loop() {
  while (true) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &ThreadPool::HasJobOrStopping));
      if (jobs_.empty()) return;  // stopping and drained
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    std::move(job)();
  }
}

}  // namespace dinov3::pipeline
