#include "client/bench/bench_report.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "nlohmann/json.hpp"

namespace dinov3::bench {
namespace {

PointResult SamplePoint() {
  PointResult p;
  p.shape.concurrency = 4;
  p.stable = true;
  p.windows = 5;
  p.measured = Window{.seconds = 2, .requests = 10, .images = 20, .latencies = {0.1, 0.2},
                      .errors = {{"UNAVAILABLE", 3}}, .response_bytes = 1000, .timed = 10,
                      .queue_seconds = 0.05, .preprocess_seconds = 0.1,
                      .inference_seconds = 0.5, .batch_size = 40};
  p.latency = Summarize(p.measured.latencies);
  return p;
}

TEST(BenchReportTest, JsonHasTheDocumentedFieldsInBaseUnits) {
  RunDescription run{.target = "t:1", .protocol = "grpc", .method = "embed", .mode = "closed",
                     .image = "224x224 raw", .images_per_request = 2,
                     .outputs = {"cls", "pooled"}, .dtype = "float32"};
  const nlohmann::json json = nlohmann::json::parse(ToJsonText(run, {SamplePoint()}));
  EXPECT_EQ(json["tool"], "dinov3-bench");
  EXPECT_EQ(json["mode"], "closed");
  EXPECT_EQ(json["outputs"], nlohmann::json({"cls", "pooled"}));
  ASSERT_EQ(json["points"].size(), 1u);
  const nlohmann::json& p = json["points"][0];
  EXPECT_EQ(p["concurrency"], 4);
  EXPECT_EQ(p["rate"], 0.0);
  EXPECT_EQ(p["stable"], true);
  EXPECT_EQ(p["windows"], 5);
  EXPECT_EQ(p["requests"], 10);
  EXPECT_DOUBLE_EQ(p["images_per_second"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(p["requests_per_second"].get<double>(), 5);
  EXPECT_EQ(p["errors"]["UNAVAILABLE"], 3);
  EXPECT_DOUBLE_EQ(p["latency_ms"]["p50"].get<double>(), 100);
  EXPECT_DOUBLE_EQ(p["latency_ms"]["max"].get<double>(), 200);
  EXPECT_DOUBLE_EQ(p["server_ms"]["inference"].get<double>(), 50);
  EXPECT_DOUBLE_EQ(p["server_ms"]["batch_size"].get<double>(), 4);
  EXPECT_DOUBLE_EQ(p["response_bytes"].get<double>(), 100);
  for (const char* key : {"mean", "p90", "p95", "p99"}) EXPECT_TRUE(p["latency_ms"].contains(key));
}

TEST(BenchReportTest, TableAndProgressLines) {
  const std::string row = TableRow(SamplePoint());
  EXPECT_TRUE(absl::StartsWith(row, "c=4")) << row;
  EXPECT_TRUE(absl::StrContains(row, "10.00")) << row;
  EXPECT_TRUE(absl::StrContains(row, "UNAVAILABLE=3")) << row;
  EXPECT_TRUE(absl::StrContains(TableHeader(), "p99 ms"));
  const std::string progress = ProgressLine({.rate = 2.5}, 0, SamplePoint().measured);
  EXPECT_EQ(progress, "rate=2.5/s window 1: 10.00 img/s 5.00 req/s p50 100.0 ms p99 200.0 ms errors 3");
}

}  // namespace
}  // namespace dinov3::bench
