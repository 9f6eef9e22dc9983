#include "client/bench/load_driver.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace dinov3::bench {
namespace {

constexpr size_t kMaxBacklog = 1'000'000;  // open-loop arrivals waiting for a free worker

// The threads that generate load for one point; Stop() joins them all.
class LoadRun {
 public:
  LoadRun(Transport& transport, const LoadShape& shape, WindowRecorder& recorder)
      : transport_(transport), shape_(shape), recorder_(recorder) {}

  void Start() {
    if (shape_.concurrency > 0) {
      for (int w = 0; w < shape_.concurrency; ++w) threads_.emplace_back([this, w] { Closed(w); });
      return;
    }
    for (int w = 0; w < shape_.max_outstanding; ++w) threads_.emplace_back([this, w] { Open(w); });
    threads_.emplace_back([this] { Dispatch(); });
  }

  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  bool Stopping() {
    absl::MutexLock lock(&mu_);
    return stop_;
  }

  void Closed(int worker) {
    while (!Stopping()) {
      const absl::Time start = absl::Now();
      const CallResult result = transport_.Call(worker);
      recorder_.Record(absl::ToDoubleSeconds(absl::Now() - start), result);
    }
  }

  void Open(int worker) {
    while (true) {
      absl::Time arrival;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](LoadRun* run) ABSL_EXCLUSIVE_LOCKS_REQUIRED(run->mu_) {
              return run->stop_ || !run->arrivals_.empty();
            },
            this));
        if (stop_) return;
        arrival = arrivals_.front();
        arrivals_.pop_front();
      }
      const CallResult result = transport_.Call(worker);
      recorder_.Record(absl::ToDoubleSeconds(absl::Now() - arrival), result);
    }
  }

  void Dispatch() {
    PoissonArrivals arrivals(shape_.rate, shape_.seed);
    absl::Time next = absl::Now();
    while (true) {
      next += absl::Seconds(arrivals.NextGapSeconds());
      absl::MutexLock lock(&mu_);
      // Sleeps until the arrival time unless Stop() comes first.
      mu_.AwaitWithDeadline(absl::Condition(&stop_), next);
      if (stop_) return;
      if (arrivals_.size() < kMaxBacklog) arrivals_.push_back(next);
    }
  }

  Transport& transport_;
  const LoadShape shape_;
  WindowRecorder& recorder_;
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<absl::Time> arrivals_ ABSL_GUARDED_BY(mu_);
};

// Waits until the current window has lasted plan.window_seconds and holds plan.min_window_calls
// calls, or until `deadline`.
void AwaitWindowEnd(const WindowRecorder& recorder, const WindowPlan& plan, absl::Time deadline) {
  const absl::Time earliest_end = absl::Now() + absl::Seconds(plan.window_seconds);
  while (true) {
    const absl::Time now = absl::Now();
    if (now >= deadline) return;
    if (now >= earliest_end && recorder.CallsInWindow() >= plan.min_window_calls) return;
    absl::SleepFor(std::min(absl::Milliseconds(50), std::max(earliest_end, now + absl::Milliseconds(1)) - now));
  }
}

}  // namespace

absl::StatusOr<PointResult> RunPoint(Transport& transport, const LoadShape& shape,
                                     const WindowPlan& plan, const WindowObserver& observer) {
  const bool closed = shape.concurrency > 0;
  if (closed == (shape.rate > 0) || (!closed && shape.max_outstanding <= 0)) {
    return absl::InvalidArgumentError(
        "a load shape needs either concurrency > 0 (closed loop) or rate > 0 with "
        "max_outstanding > 0 (open loop)");
  }
  if (plan.stable_windows <= 0 || plan.window_seconds <= 0) {
    return absl::InvalidArgumentError("window_seconds and stable_windows must be positive");
  }
  const absl::Status opened = transport.Open(closed ? shape.concurrency : shape.max_outstanding);
  if (!opened.ok()) return opened;

  WindowRecorder recorder;
  LoadRun run(transport, shape, recorder);
  run.Start();
  absl::SleepFor(absl::Seconds(plan.warmup_seconds));
  const Window warmup = recorder.TakeWindow();  // not measured, but counted in `calls`

  PointResult result;
  result.shape = shape;
  std::vector<Window> windows;
  std::vector<double> throughputs;
  const absl::Time deadline = absl::Now() + absl::Seconds(plan.max_seconds);
  while (true) {
    AwaitWindowEnd(recorder, plan, deadline);
    windows.push_back(recorder.TakeWindow());
    throughputs.push_back(windows.back().ImagesPerSecond());
    if (observer) observer(static_cast<int>(windows.size()) - 1, windows.back());
    result.stable = WindowsAgree(throughputs, plan.stable_windows, plan.stability);
    if (result.stable || absl::Now() >= deadline) break;
  }
  run.Stop();
  transport.Close();
  const Window tail = recorder.TakeWindow();  // calls that ended after the last window

  const size_t kept =
      closed ? std::min(windows.size(), static_cast<size_t>(plan.stable_windows)) : windows.size();
  result.windows = static_cast<int>(windows.size());
  const auto calls_of = [](const Window& w) {
    int64_t calls = w.requests;
    for (const auto& entry : w.errors) calls += entry.second;
    return calls;
  };
  result.calls = calls_of(warmup) + calls_of(tail);
  for (const Window& w : windows) result.calls += calls_of(w);
  result.measured = Merge(absl::MakeConstSpan(windows).subspan(windows.size() - kept));
  result.latency = Summarize(result.measured.latencies);
  return result;
}

}  // namespace dinov3::bench
