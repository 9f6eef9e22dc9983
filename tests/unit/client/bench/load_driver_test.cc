// The load driver against a fake transport whose calls take a fixed time: closed-loop
// concurrency, open-loop arrival rate, warm-up exclusion, stability, error accounting.
#include "client/bench/load_driver.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace dinov3::bench {
namespace {

class FakeTransport : public Transport {
 public:
  explicit FakeTransport(absl::Duration call_time, int fail_every = 0)
      : call_time_(call_time), fail_every_(fail_every) {}

  absl::Status Open(int workers) override {
    workers_ = workers;
    return open_status_;
  }
  CallResult Call(int worker) override {
    EXPECT_GE(worker, 0);
    EXPECT_LT(worker, workers_);
    const int now_in_flight = ++in_flight_;
    int seen = max_in_flight_.load();
    while (now_in_flight > seen && !max_in_flight_.compare_exchange_weak(seen, now_in_flight)) {
    }
    absl::SleepFor(call_time_);
    --in_flight_;
    const int n = ++calls_;
    CallResult result{.images = 2, .response_bytes = 10};
    if (fail_every_ > 0 && n % fail_every_ == 0) result.error = "INTERNAL";
    return result;
  }
  void Close() override { closed_ = true; }

  absl::Status open_status_ = absl::OkStatus();
  std::atomic<int> calls_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  bool closed_ = false;

 private:
  const absl::Duration call_time_;
  const int fail_every_;
  int workers_ = 0;
};

WindowPlan ShortPlan() {
  return {.warmup_seconds = 0.1, .window_seconds = 0.3, .min_window_calls = 1,
          .stable_windows = 3, .stability = 0.5, .max_seconds = 5};
}

TEST(LoadDriverTest, ClosedLoopKeepsConcurrencyCallsInFlight) {
  FakeTransport transport(absl::Milliseconds(20));
  const LoadShape shape{.concurrency = 4};
  std::vector<int> seen_windows;
  absl::StatusOr<PointResult> point =
      RunPoint(transport, shape, ShortPlan(), [&](int index, const Window&) {
        seen_windows.push_back(index);
      });
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_TRUE(point->stable);
  EXPECT_EQ(transport.max_in_flight_.load(), 4);
  EXPECT_EQ(transport.in_flight_.load(), 0);  // every call returned before RunPoint did
  EXPECT_TRUE(transport.closed_);
  EXPECT_EQ(point->calls, transport.calls_.load());  // warm-up and tail counted, none lost
  EXPECT_GT(point->calls, point->measured.requests);
  EXPECT_EQ(point->windows, static_cast<int>(seen_windows.size()));
  EXPECT_GE(point->windows, 3);
  // 4 callers x 50 calls/s x 2 images; generous bounds for a loaded machine.
  EXPECT_GT(point->measured.ImagesPerSecond(), 20);
  EXPECT_LT(point->measured.ImagesPerSecond(), 401);
  EXPECT_EQ(point->measured.images, 2 * point->measured.requests);
  // The summary covers only the last stable_windows windows.
  EXPECT_LT(point->measured.seconds, 0.3 * 3 + 0.5);
  EXPECT_GE(point->latency.p50, 0.019);
  EXPECT_LE(point->latency.p50, point->latency.p99);
}

TEST(LoadDriverTest, OpenLoopFollowsTheRateAndCountsFromArrival) {
  FakeTransport transport(absl::Milliseconds(5));
  const LoadShape shape{.rate = 200, .max_outstanding = 8, .seed = 3};
  WindowPlan plan = ShortPlan();
  plan.window_seconds = 1;
  absl::StatusOr<PointResult> point = RunPoint(transport, shape, plan, nullptr);
  ASSERT_TRUE(point.ok()) << point.status();
  // Open loop: every measured window is in the summary.
  EXPECT_GE(point->measured.seconds, 0.95 * plan.window_seconds * point->windows);
  const double rps = point->measured.RequestsPerSecond();
  EXPECT_GT(rps, 140);
  EXPECT_LT(rps, 260);
  EXPECT_GE(point->latency.p50, 0.004);
}

TEST(LoadDriverTest, OpenLoopLatencyIncludesWaitingForAWorker) {
  // One worker, 20 ms calls, 100 requests/s offered: the backlog grows, and so must latency.
  FakeTransport transport(absl::Milliseconds(20));
  const LoadShape shape{.rate = 100, .max_outstanding = 1, .seed = 5};
  WindowPlan plan = ShortPlan();
  plan.stability = 0.01;  // never stable: runs to max_seconds
  plan.max_seconds = 1.5;
  absl::StatusOr<PointResult> point = RunPoint(transport, shape, plan, nullptr);
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_LE(point->measured.RequestsPerSecond(), 52);
  EXPECT_GT(point->latency.max, 0.3);  // far above the 20 ms a call takes
}

TEST(LoadDriverTest, UnstableRunStopsAtMaxSeconds) {
  FakeTransport transport(absl::Milliseconds(10));
  WindowPlan plan = ShortPlan();
  plan.stability = 0;  // only identical throughputs would agree
  plan.max_seconds = 1.2;
  const absl::Time start = absl::Now();
  absl::StatusOr<PointResult> point = RunPoint(transport, {.concurrency = 2}, plan, nullptr);
  ASSERT_TRUE(point.ok());
  EXPECT_FALSE(point->stable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST(LoadDriverTest, ErrorsAreCountedNotTimed) {
  FakeTransport transport(absl::Milliseconds(5), /*fail_every=*/4);
  absl::StatusOr<PointResult> point = RunPoint(transport, {.concurrency = 2}, ShortPlan(), nullptr);
  ASSERT_TRUE(point.ok());
  const Window& w = point->measured;
  ASSERT_EQ(w.errors.count("INTERNAL"), 1u);
  const double failed = static_cast<double>(w.errors.at("INTERNAL"));
  EXPECT_NEAR(failed / (failed + w.requests), 0.25, 0.1);
  EXPECT_EQ(static_cast<int64_t>(w.latencies.size()), w.requests);
}

TEST(LoadDriverTest, RejectsBadShapesAndPropagatesOpenErrors) {
  FakeTransport transport(absl::Milliseconds(1));
  EXPECT_EQ(RunPoint(transport, {}, ShortPlan(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunPoint(transport, {.concurrency = 1, .rate = 5}, ShortPlan(), nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  transport.open_status_ = absl::UnavailableError("no server");
  EXPECT_EQ(RunPoint(transport, {.concurrency = 1}, ShortPlan(), nullptr).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(transport.calls_.load(), 0);
}

TEST(PoissonArrivalsTest, MeanGapIsOneOverRateAndSeeded) {
  PoissonArrivals a(50, 7);
  PoissonArrivals b(50, 7);
  double sum = 0;
  for (int i = 0; i < 20000; ++i) {
    const double gap = a.NextGapSeconds();
    EXPECT_EQ(gap, b.NextGapSeconds());
    EXPECT_GE(gap, 0);
    sum += gap;
  }
  EXPECT_NEAR(sum / 20000, 1.0 / 50, 0.001);
}

}  // namespace
}  // namespace dinov3::bench
