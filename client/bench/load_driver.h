// Drives a Transport with one load shape and measures it in windows, like Triton's
// perf_analyzer: a warm-up, then windows of at least window_seconds (and min_window_calls
// calls) until the last stable_windows windows agree on throughput within `stability`, or
// max_seconds have passed.
//
// Closed loop: `concurrency` workers each send the next request as soon as the last answer is
// back. Open loop: requests arrive at `rate` per second with exponential gaps (Poisson), are
// served by up to max_outstanding workers, and each latency counts from the request's arrival,
// so time spent waiting for a free worker is not hidden (no coordinated omission).
//
// RunPoint blocks until the point is measured and every call it started has returned.
#ifndef DINOV3_CLIENT_BENCH_LOAD_DRIVER_H_
#define DINOV3_CLIENT_BENCH_LOAD_DRIVER_H_

#include <cstdint>
#include <functional>
#include <random>

#include "absl/status/statusor.h"
#include "client/bench/load_stats.h"
#include "client/bench/transport.h"

namespace dinov3::bench {

struct LoadShape {
  int concurrency = 0;  // closed loop when > 0
  double rate = 0;      // open loop (requests per second) when > 0
  int max_outstanding = 256;
  uint64_t seed = 1;
};

struct WindowPlan {
  double warmup_seconds = 2;
  double window_seconds = 5;
  int64_t min_window_calls = 8;
  int stable_windows = 3;
  double stability = 0.10;
  double max_seconds = 60;
};

struct PointResult {
  LoadShape shape;
  bool stable = false;
  int windows = 0;   // measured windows (warm-up excluded)
  int64_t calls = 0;  // every call the point made and saw end: warm-up, windows and tail
  // Closed loop: the last stable_windows windows, merged. Open loop: every measured window,
  // merged; the client sets the rate there, and one window's Poisson count is too noisy for
  // the last few alone to stand for the point.
  Window measured;
  LatencySummary latency;
};

// Called after each measured window with its index (0-based).
using WindowObserver = std::function<void(int index, const Window& window)>;

// InvalidArgument for a shape that is neither closed nor open loop; otherwise the errors of
// Transport::Open.
absl::StatusOr<PointResult> RunPoint(Transport& transport, const LoadShape& shape,
                                     const WindowPlan& plan, const WindowObserver& observer);

// Exponential inter-arrival gaps with mean 1 / rate, from a seeded generator.
class PoissonArrivals {
 public:
  PoissonArrivals(double rate_per_second, uint64_t seed)
      : engine_(seed), gap_(rate_per_second) {}
  double NextGapSeconds() { return gap_(engine_); }

 private:
  std::mt19937_64 engine_;
  std::exponential_distribution<double> gap_;
};

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_LOAD_DRIVER_H_
