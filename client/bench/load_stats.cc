#include "client/bench/load_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

namespace dinov3::bench {

Window Merge(absl::Span<const Window> windows) {
  Window merged;
  for (const Window& w : windows) {
    merged.seconds += w.seconds;
    merged.requests += w.requests;
    merged.images += w.images;
    merged.latencies.insert(merged.latencies.end(), w.latencies.begin(), w.latencies.end());
    for (const auto& [name, count] : w.errors) merged.errors[name] += count;
    merged.response_bytes += w.response_bytes;
    merged.timed += w.timed;
    merged.queue_seconds += w.queue_seconds;
    merged.preprocess_seconds += w.preprocess_seconds;
    merged.inference_seconds += w.inference_seconds;
    merged.batch_size += w.batch_size;
  }
  return merged;
}

LatencySummary Summarize(std::vector<double> latencies) {
  LatencySummary s;
  if (latencies.empty()) return s;
  std::sort(latencies.begin(), latencies.end());
  const size_t n = latencies.size();
  const auto rank = [&](double q) {
    const size_t k = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
    return latencies[std::clamp<size_t>(k, 1, n) - 1];
  };
  s.mean = std::accumulate(latencies.begin(), latencies.end(), 0.0) / static_cast<double>(n);
  s.p50 = rank(0.50);
  s.p90 = rank(0.90);
  s.p95 = rank(0.95);
  s.p99 = rank(0.99);
  s.max = latencies.back();
  return s;
}

void WindowRecorder::Record(double latency_seconds, const CallResult& result) {
  absl::MutexLock lock(&mu_);
  ++calls_;
  if (!result.error.empty()) {
    ++current_.errors[result.error];
    return;
  }
  ++current_.requests;
  current_.images += result.images;
  current_.latencies.push_back(latency_seconds);
  current_.response_bytes += static_cast<double>(result.response_bytes);
  if (result.has_timing) {
    ++current_.timed;
    current_.queue_seconds += result.queue_seconds;
    current_.preprocess_seconds += result.preprocess_seconds;
    current_.inference_seconds += result.inference_seconds;
    current_.batch_size += result.batch_size;
  }
}

int64_t WindowRecorder::CallsInWindow() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

Window WindowRecorder::TakeWindow() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  Window done = std::exchange(current_, Window{});
  done.seconds = absl::ToDoubleSeconds(now - window_start_);
  window_start_ = now;
  calls_ = 0;
  return done;
}

bool WindowsAgree(absl::Span<const double> throughputs, int count, double tolerance) {
  if (count <= 0 || throughputs.size() < static_cast<size_t>(count)) return false;
  const absl::Span<const double> last = throughputs.subspan(throughputs.size() - count);
  const double mean = std::accumulate(last.begin(), last.end(), 0.0) / count;
  if (mean <= 0) return false;
  return std::all_of(last.begin(), last.end(),
                     [&](double t) { return std::abs(t - mean) <= tolerance * mean; });
}

}  // namespace dinov3::bench
