#include "client/bench/bench_report.h"

#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace dinov3::bench {
namespace {

constexpr double kMs = 1000.0;

int64_t ErrorCount(const Window& window) {
  return std::accumulate(window.errors.begin(), window.errors.end(), int64_t{0},
                         [](int64_t sum, const auto& entry) { return sum + entry.second; });
}

std::string ShapeName(const LoadShape& shape) {
  return shape.concurrency > 0 ? absl::StrCat("c=", shape.concurrency)
                               : absl::StrFormat("rate=%g/s", shape.rate);
}

double PerTimed(double sum, const Window& window) {
  return window.timed > 0 ? sum / static_cast<double>(window.timed) : 0.0;
}

nlohmann::json PointJson(const PointResult& point) {
  const Window& w = point.measured;
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [name, count] : w.errors) errors[name] = count;
  return {
      {"concurrency", point.shape.concurrency},
      {"rate", point.shape.rate},
      {"stable", point.stable},
      {"windows", point.windows},
      {"calls", point.calls},
      {"seconds", w.seconds},
      {"requests", w.requests},
      {"images", w.images},
      {"errors", errors},
      {"requests_per_second", w.RequestsPerSecond()},
      {"images_per_second", w.ImagesPerSecond()},
      {"latency_ms",
       {{"mean", point.latency.mean * kMs},
        {"p50", point.latency.p50 * kMs},
        {"p90", point.latency.p90 * kMs},
        {"p95", point.latency.p95 * kMs},
        {"p99", point.latency.p99 * kMs},
        {"max", point.latency.max * kMs}}},
      {"server_ms",
       {{"queue", PerTimed(w.queue_seconds, w) * kMs},
        {"preprocess", PerTimed(w.preprocess_seconds, w) * kMs},
        {"inference", PerTimed(w.inference_seconds, w) * kMs},
        {"batch_size", PerTimed(w.batch_size, w)}}},
      {"response_bytes", w.requests > 0 ? w.response_bytes / static_cast<double>(w.requests) : 0},
  };
}

}  // namespace

std::string ToJsonText(const RunDescription& run, const std::vector<PointResult>& points) {
  nlohmann::json json = {
      {"tool", "dinov3-bench"},
      {"target", run.target},
      {"protocol", run.protocol},
      {"method", run.method},
      {"mode", run.mode},
      {"images_per_request", run.images_per_request},
      {"image", run.image},
      {"outputs", run.outputs},
      {"dtype", run.dtype},
      {"model", run.model},
      {"points", nlohmann::json::array()},
  };
  for (const PointResult& point : points) json["points"].push_back(PointJson(point));
  return json.dump(2) + "\n";
}

std::string TableHeader() {
  return absl::StrFormat("%-12s %9s %9s %9s %9s %9s %9s %9s %22s %6s %s\n", "load", "img/s",
                         "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "batch",
                         "server q/pre/inf ms", "stable", "errors");
}

std::string TableRow(const PointResult& point) {
  const Window& w = point.measured;
  std::string errors;
  for (const auto& [name, count] : w.errors) absl::StrAppend(&errors, name, "=", count, " ");
  return absl::StrFormat(
      "%-12s %9.2f %9.2f %9.1f %9.1f %9.1f %9.1f %9.2f %8.1f/%5.1f/%7.1f %6s %s\n",
      ShapeName(point.shape), w.ImagesPerSecond(), w.RequestsPerSecond(),
      point.latency.p50 * kMs, point.latency.p90 * kMs, point.latency.p99 * kMs,
      point.latency.max * kMs, PerTimed(w.batch_size, w), PerTimed(w.queue_seconds, w) * kMs,
      PerTimed(w.preprocess_seconds, w) * kMs, PerTimed(w.inference_seconds, w) * kMs,
      point.stable ? "yes" : "no", errors.empty() ? "0" : errors);
}

std::string ProgressLine(const LoadShape& shape, int index, const Window& window) {
  const LatencySummary latency = Summarize(window.latencies);
  return absl::StrFormat("%s window %d: %.2f img/s %.2f req/s p50 %.1f ms p99 %.1f ms errors %d",
                         ShapeName(shape), index + 1, window.ImagesPerSecond(),
                         window.RequestsPerSecond(), latency.p50 * kMs, latency.p99 * kMs,
                         ErrorCount(window));
}

}  // namespace dinov3::bench
