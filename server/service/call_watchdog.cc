#include "server/service/call_watchdog.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

#include "absl/time/clock.h"

namespace dinov3::service {

CallWatchdog::Guard::Guard(Guard&& other) noexcept
    : watchdog_(std::exchange(other.watchdog_, nullptr)), id_(other.id_) {}

CallWatchdog::Guard& CallWatchdog::Guard::operator=(Guard&& other) noexcept {
  if (this != &other) {
    Reset();
    watchdog_ = std::exchange(other.watchdog_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

void CallWatchdog::Guard::SetDeadline(absl::Time deadline) {
  if (watchdog_ != nullptr) watchdog_->SetDeadline(id_, deadline);
}

void CallWatchdog::Guard::Reset() {
  if (watchdog_ != nullptr) std::exchange(watchdog_, nullptr)->Unwatch(id_);
}

CallWatchdog::CallWatchdog() : thread_([this] { Run(); }) {}

CallWatchdog::~CallWatchdog() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

CallWatchdog::Guard CallWatchdog::Watch(grpc::ServerContextBase* context, absl::Time deadline,
                                        const char* what) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  entries_.emplace(id, Entry{context, deadline, what});
  if (deadline < wake_at_) ++changes_;
  return Guard(this, id);
}

void CallWatchdog::SetDeadline(uint64_t id, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;  // already cancelled
  it->second.deadline = deadline;
  if (deadline < wake_at_) ++changes_;  // a later deadline is found at the next wake-up
}

void CallWatchdog::Unwatch(uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  // A cancel in progress on the watchdog thread still uses the context: wait for it, unless
  // this is that thread (gRPC finishing the call inline from TryCancel).
  if (it->second.cancelling && std::this_thread::get_id() != thread_.get_id()) {
    const auto gone = [this, id]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return entries_.count(id) == 0;
    };
    mu_.Await(absl::Condition(&gone));
    return;
  }
  entries_.erase(it);
}

absl::Time CallWatchdog::EarliestDeadline() const {
  absl::Time earliest = absl::InfiniteFuture();
  for (const auto& [id, entry] : entries_) {
    if (!entry.cancelling && entry.deadline < earliest) earliest = entry.deadline;
  }
  return earliest;
}

void CallWatchdog::Run() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    const uint64_t seen = changes_;
    const auto changed = [this, seen]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stop_ || changes_ != seen;
    };
    wake_at_ = EarliestDeadline();
    mu_.AwaitWithDeadline(absl::Condition(&changed), wake_at_);
    if (stop_) break;
    const absl::Time now = absl::Now();
    std::vector<std::pair<uint64_t, Entry>> expired;
    for (auto& [id, entry] : entries_) {
      if (!entry.cancelling && entry.deadline <= now) {
        entry.cancelling = true;
        expired.emplace_back(id, entry);
      }
    }
    for (const auto& [id, entry] : expired) {
      mu_.Unlock();
      spdlog::warn("{} call from {} ran past server.max_call_seconds: cancelled", entry.what,
                   entry.context->peer());
      entry.context->TryCancel();
      mu_.Lock();
      entries_.erase(id);
    }
  }
}

}  // namespace dinov3::service
