// What dinov3-bench prints: a progress line per window, a table row per load point, and the
// machine-readable JSON of a whole run (the format tests/bench/run_bench.py reads:
// {"tool", "target", "protocol", "method", "mode", "images_per_request", "image", "outputs",
//  "dtype", "points": [{"concurrency", "rate", "stable", "windows", "calls", "seconds",
//  "requests", "images", "errors", "requests_per_second", "images_per_second", "latency_ms":
//  {mean, p50, p90, p95, p99, max}, "server_ms": {queue, preprocess, inference, batch_size},
//  "response_bytes"}]}). "calls" counts every call of the point, warm-up and tail included;
// the other counts cover the measured windows only. Pure formatting.
#ifndef DINOV3_CLIENT_BENCH_BENCH_REPORT_H_
#define DINOV3_CLIENT_BENCH_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "client/bench/load_driver.h"

namespace dinov3::bench {

struct RunDescription {
  std::string target;
  std::string protocol;  // "grpc" | "http" | "oip-grpc" | "oip-rest" | "openai"
  std::string method;    // "embed" | "stream" | "dense"
  std::string mode;      // "closed" | "open"
  std::string image;     // "224x224 raw" or "files: a.png,b.jpg"
  int images_per_request = 1;
  std::vector<std::string> outputs;
  std::string dtype;
  std::string model;  // --model: "" (the default model), a name, or a weighted list
};

std::string ToJsonText(const RunDescription& run, const std::vector<PointResult>& points);

std::string TableHeader();
std::string TableRow(const PointResult& point);

// "c=16 window 3: 12.3 img/s 45.1 req/s p50 80.1 ms p99 120.0 ms errors 0"
std::string ProgressLine(const LoadShape& shape, int index, const Window& window);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_BENCH_REPORT_H_
