#include "client/bench/load_stats.h"

#include <gtest/gtest.h>

#include <vector>

namespace dinov3::bench {
namespace {

TEST(SummarizeTest, NearestRankPercentiles) {
  std::vector<double> latencies;
  for (int i = 100; i >= 1; --i) latencies.push_back(i);  // unsorted on purpose
  const LatencySummary s = Summarize(latencies);
  EXPECT_DOUBLE_EQ(s.p50, 50);
  EXPECT_DOUBLE_EQ(s.p90, 90);
  EXPECT_DOUBLE_EQ(s.p95, 95);
  EXPECT_DOUBLE_EQ(s.p99, 99);
  EXPECT_DOUBLE_EQ(s.max, 100);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
}

TEST(SummarizeTest, FewSamplesAndNone) {
  const LatencySummary one = Summarize({7.0});
  EXPECT_DOUBLE_EQ(one.p50, 7);
  EXPECT_DOUBLE_EQ(one.p99, 7);
  const LatencySummary two = Summarize({1.0, 3.0});
  EXPECT_DOUBLE_EQ(two.p50, 1);
  EXPECT_DOUBLE_EQ(two.p99, 3);
  const LatencySummary none = Summarize({});
  EXPECT_EQ(none.max, 0);
  EXPECT_EQ(none.p50, 0);
}

TEST(WindowRecorderTest, SeparatesSuccessesErrorsAndTiming) {
  WindowRecorder recorder;
  CallResult ok{.images = 2, .response_bytes = 100, .has_timing = true, .queue_seconds = 0.01,
                .preprocess_seconds = 0.02, .inference_seconds = 0.03, .batch_size = 4};
  recorder.Record(0.5, ok);
  recorder.Record(0.7, CallResult{.images = 1, .response_bytes = 50});  // no timing (a peer)
  recorder.Record(9.0, CallResult{.error = "UNAVAILABLE", .images = 3});
  recorder.Record(9.0, CallResult{.error = "UNAVAILABLE", .images = 3});
  recorder.Record(9.0, CallResult{.error = "HTTP_500", .images = 1});
  EXPECT_EQ(recorder.CallsInWindow(), 5);
  const Window w = recorder.TakeWindow();
  EXPECT_EQ(recorder.CallsInWindow(), 0);
  EXPECT_EQ(w.requests, 2);
  EXPECT_EQ(w.images, 3);
  EXPECT_EQ(w.latencies, (std::vector<double>{0.5, 0.7}));
  EXPECT_EQ(w.errors.at("UNAVAILABLE"), 2);
  EXPECT_EQ(w.errors.at("HTTP_500"), 1);
  EXPECT_DOUBLE_EQ(w.response_bytes, 150);
  EXPECT_EQ(w.timed, 1);
  EXPECT_DOUBLE_EQ(w.inference_seconds, 0.03);
  EXPECT_DOUBLE_EQ(w.batch_size, 4);
  EXPECT_GT(w.seconds, 0);
  EXPECT_TRUE(recorder.TakeWindow().latencies.empty());
}

TEST(MergeTest, AddsCountsSumsAndDurations) {
  Window a{.seconds = 2, .requests = 4, .images = 8, .latencies = {1, 2}, .errors = {{"X", 1}}};
  Window b{.seconds = 3, .requests = 6, .images = 6, .latencies = {3}, .errors = {{"X", 2}, {"Y", 1}}};
  const Window m = Merge({a, b});
  EXPECT_DOUBLE_EQ(m.seconds, 5);
  EXPECT_EQ(m.requests, 10);
  EXPECT_DOUBLE_EQ(m.ImagesPerSecond(), 14.0 / 5);
  EXPECT_DOUBLE_EQ(m.RequestsPerSecond(), 2);
  EXPECT_EQ(m.latencies.size(), 3u);
  EXPECT_EQ(m.errors.at("X"), 3);
  EXPECT_EQ(m.errors.at("Y"), 1);
}

TEST(WindowsAgreeTest, LastWindowsWithinTolerance) {
  EXPECT_TRUE(WindowsAgree({10, 10.5, 9.6}, 3, 0.10));
  EXPECT_FALSE(WindowsAgree({10, 12.5, 9.6}, 3, 0.10));
  // Only the last `count` matter.
  EXPECT_TRUE(WindowsAgree({1, 50, 10, 10.5, 9.6}, 3, 0.10));
  EXPECT_FALSE(WindowsAgree({10, 10}, 3, 0.10));  // too few windows
  EXPECT_FALSE(WindowsAgree({0, 0, 0}, 3, 0.10));  // nothing completed
  EXPECT_FALSE(WindowsAgree({10, 10, 10}, 0, 0.10));
}

}  // namespace
}  // namespace dinov3::bench
