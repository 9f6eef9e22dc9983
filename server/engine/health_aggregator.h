// Turns the model instances' own health transitions into the engine's: unhealthy while any
// instance is. Each instance reports only its transitions (false once, then true once); the
// callback hears false when the first instance turns unhealthy and true when the last one
// recovers. Torch-free; thread-safe (reports from several dispatch threads are serialised, and
// the callback is called under the lock, one call at a time).
#ifndef DINOV3_SERVER_ENGINE_HEALTH_AGGREGATOR_H_
#define DINOV3_SERVER_ENGINE_HEALTH_AGGREGATOR_H_

#include <functional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dinov3::engine {

class HealthAggregator {
 public:
  // `callback` may be empty: then nothing is reported (enabled() is false).
  explicit HealthAggregator(std::function<void(bool)> callback) : callback_(std::move(callback)) {}

  bool enabled() const { return callback_ != nullptr; }

  // One instance's transition.
  void Report(bool healthy) {
    absl::MutexLock lock(&mu_);
    unhealthy_ += healthy ? -1 : 1;
    if ((healthy && unhealthy_ == 0) || (!healthy && unhealthy_ == 1)) callback_(healthy);
  }

 private:
  absl::Mutex mu_;
  int unhealthy_ ABSL_GUARDED_BY(mu_) = 0;
  const std::function<void(bool)> callback_;
};

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_HEALTH_AGGREGATOR_H_
