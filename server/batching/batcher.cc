#include "server/batching/batcher.h"

#include <algorithm>
#include <utility>

namespace dinov3::batching {
namespace {

struct WakeArgs {
  const int64_t* epoch;
  int64_t seen;
};

bool EpochChanged(WakeArgs* args) { return *args->epoch != args->seen; }

}  // namespace

const Clock* RealClock::Get() {
  static const RealClock* const clock = new RealClock();
  return clock;
}

Batcher::Batcher(const BatchingOptions& options, std::vector<BatchRunner*> runners,
                 const Clock* clock)
    : clock_(clock), policy_(options) {
  for (BatchRunner* runner : runners) {
    threads_.emplace_back([this, runner] { DispatchLoop(runner); });
  }
}

Batcher::~Batcher() { Shutdown(absl::ZeroDuration()); }

absl::Status Batcher::Schedule(std::unique_ptr<EmbedTask>& task, bool expected) {
  absl::MutexLock lock(&mu_);
  if (expected) {
    expected_ = std::max<int64_t>(0, expected_ - 1);
    ++epoch_;
  }
  if (stopping_) return absl::UnavailableError("server is shutting down");
  absl::Status status = policy_.Add(task, clock_->Now());
  if (status.ok()) ++epoch_;
  return status;
}

void Batcher::Expect(int n) {
  absl::MutexLock lock(&mu_);
  expected_ += n;
}

void Batcher::Unexpect(int n) {
  absl::MutexLock lock(&mu_);
  expected_ = std::max<int64_t>(0, expected_ - n);
  ++epoch_;
}

int Batcher::queued() const {
  absl::MutexLock lock(&mu_);
  return policy_.size();
}

BatcherStats Batcher::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

BatchPolicy::Decision Batcher::Next() {
  absl::MutexLock lock(&mu_);
  while (true) {
    const absl::Time now = clock_->Now();
    const bool draining = stopping_;
    if (draining && (policy_.size() == 0 || now >= drain_deadline_)) {
      return {};  // stop; Shutdown finishes whatever is left
    }
    // Nothing more is on its way: waiting for a fuller batch cannot help.
    const bool flush = draining || expected_ == 0;
    BatchPolicy::Decision decision = policy_.NextBatch(now, flush);
    if (!decision.batch.empty() || !decision.dead.empty()) {
      if (!decision.batch.empty()) {
        ++stats_.batches;
        stats_.images += static_cast<int64_t>(decision.batch.size());
        stats_.max_batch_size_seen =
            std::max(stats_.max_batch_size_seen, static_cast<int>(decision.batch.size()));
      }
      return decision;
    }
    WakeArgs args{&epoch_, epoch_};
    const absl::Condition woken(&EpochChanged, &args);
    if (decision.wake_at) {
      mu_.AwaitWithTimeout(woken, std::max(*decision.wake_at - now, absl::ZeroDuration()));
    } else {
      mu_.Await(woken);
    }
  }
}

absl::Status Batcher::WaitUntilPrepared() {
  absl::MutexLock lock(&mu_);
  std::pair<const int*, int> all_prepared{&prepared_, static_cast<int>(threads_.size())};
  mu_.Await(absl::Condition(
      +[](std::pair<const int*, int>* a) { return *a->first >= a->second; }, &all_prepared));
  return prepare_error_;
}

void Batcher::DispatchLoop(BatchRunner* runner) {
  absl::Status prepared = runner->PrepareThread();
  {
    absl::MutexLock lock(&mu_);
    ++prepared_;
    if (!prepared.ok() && prepare_error_.ok()) prepare_error_ = prepared;
  }
  if (!prepared.ok()) return;
  while (true) {
    BatchPolicy::Decision decision = Next();
    if (decision.batch.empty() && decision.dead.empty()) return;
    for (auto& task : decision.dead) {
      // The deadline first: gRPC also reports an expired call as cancelled.
      if (clock_->Now() >= task->deadline) {
        task->Finish(absl::DeadlineExceededError("deadline passed while waiting in the queue"));
      } else {
        task->Finish(absl::CancelledError("request cancelled before inference"));
      }
    }
    if (!decision.batch.empty()) {
      const int size = static_cast<int>(decision.batch.size());
      for (auto& task : decision.batch) task->batch_size = size;
      runner->Run(std::move(decision.batch));
    }
  }
}

void Batcher::Shutdown(absl::Duration grace) {
  absl::MutexLock shutdown_lock(&shutdown_mu_);
  if (joined_) return;
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      drain_deadline_ = clock_->Now() + grace;
    } else {
      drain_deadline_ = std::min(drain_deadline_, clock_->Now() + grace);
    }
    ++epoch_;
  }
  for (std::thread& thread : threads_) thread.join();
  joined_ = true;
  TaskBatch left;
  {
    absl::MutexLock lock(&mu_);
    left = policy_.TakeAll();
  }
  for (auto& task : left) {
    task->Finish(absl::UnavailableError("server shut down before this image was processed"));
  }
}

}  // namespace dinov3::batching
