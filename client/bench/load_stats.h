// Aggregation of benchmark calls into measurement windows, and latency percentiles.
//
// WindowRecorder is thread-safe: callers Record from any thread while the controller takes
// windows. Latency percentiles cover successful calls only; failed calls are counted by error.
#ifndef DINOV3_CLIENT_BENCH_LOAD_STATS_H_
#define DINOV3_CLIENT_BENCH_LOAD_STATS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "client/bench/call_result.h"

namespace dinov3::bench {

// Everything recorded during one window (or several merged).
struct Window {
  double seconds = 0;
  int64_t requests = 0;  // successful calls
  int64_t images = 0;    // images of successful calls
  std::vector<double> latencies;  // seconds, successful calls, in arrival order
  std::map<std::string, int64_t> errors;  // error name -> count
  double response_bytes = 0;              // summed over successful calls
  // Sums over successful calls that carried server timing.
  int64_t timed = 0;
  double queue_seconds = 0;
  double preprocess_seconds = 0;
  double inference_seconds = 0;
  double batch_size = 0;

  double RequestsPerSecond() const { return seconds > 0 ? requests / seconds : 0; }
  double ImagesPerSecond() const { return seconds > 0 ? images / seconds : 0; }
};

// Concatenates windows: durations, counts and sums add up.
Window Merge(absl::Span<const Window> windows);

struct LatencySummary {  // seconds; all 0 when there are no samples
  double mean = 0;
  double p50 = 0;
  double p90 = 0;
  double p95 = 0;
  double p99 = 0;
  double max = 0;
};

// Nearest-rank percentiles (the smallest sample with at least q of the samples at or below it).
LatencySummary Summarize(std::vector<double> latencies);

class WindowRecorder {
 public:
  WindowRecorder() : window_start_(absl::Now()) {}

  void Record(double latency_seconds, const CallResult& result);

  // Calls recorded (successful or not) since the current window began.
  int64_t CallsInWindow() const;

  // Ends the current window and starts the next one.
  Window TakeWindow();

 private:
  mutable absl::Mutex mu_;
  Window current_ ABSL_GUARDED_BY(mu_);
  int64_t calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_);
};

// True when the last `count` throughputs each lie within `tolerance` (relative) of their mean,
// as perf_analyzer decides stability. False with fewer than `count` values or a mean of 0.
bool WindowsAgree(absl::Span<const double> throughputs, int count, double tolerance);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_LOAD_STATS_H_
