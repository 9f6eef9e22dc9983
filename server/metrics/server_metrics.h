// The server's Prometheus metrics (README "Metrics" lists them): one registry holding every
// dinov3_* family, fed by the service (requests, rejections, preprocessing, queue waits) and the
// engine (batches), plus values read at scrape time (queue depth, device memory, process_*).
//
// Histogram buckets: durations use kDurationBuckets (0.5 ms to 60 s: a small model's
// sub-millisecond queue waits up to a large model's multi-second dense requests on CPU);
// batch sizes use powers of two up to 1024 (the largest max_batch_size). Labels are bounded:
// method is a dinov3.v1 RPC or a front door's fixed name (ModelInfer, ModelMetadata,
// RestModelInfer, OpenAIEmbeddings), protocol the front door the method belongs to
// (ProtocolOfMethod), code a gRPC code name, reason one of the kReason* names in
// server/common/status_reason.h, device one of the configured devices, model a served model's
// name (from the configuration or the model repository, never from a request: a request for an
// unknown model counts under kUnknownModel; an API key refused before any model, under "").
// Prometheus-cpp only; no gRPC or torch. Thread-safe.
#ifndef DINOV3_SERVER_METRICS_SERVER_METRICS_H_
#define DINOV3_SERVER_METRICS_SERVER_METRICS_H_

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "server/common/types.h"

namespace dinov3::metrics {

inline const std::vector<double>& DurationBuckets() {
  static const std::vector<double> buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
  return buckets;
}

// The model label of requests that named no served model (not a valid model name).
inline constexpr char kUnknownModel[] = "(unknown)";

// The protocol label of a method label: "dinov3" (the native dinov3.v1 gRPC API), "oip-grpc"
// (ModelInfer, ModelMetadata), "oip-rest" (RestModelInfer), "openai" (OpenAIEmbeddings); a
// method no front door names is "dinov3", so the label stays bounded.
std::string_view ProtocolOfMethod(std::string_view method);

class ServerMetrics {
 public:
  // `version` goes into dinov3_build_info.
  explicit ServerMetrics(const std::string& version);
  ~ServerMetrics();

  // One finished request (an Embed or EmbedDense call, one StreamEmbed message, a
  // GetModelInfo call) for `model`. `reason` is empty unless the request was rejected.
  void RecordRequest(std::string_view method, std::string_view model, std::string_view code,
                     double seconds, std::string_view reason);
  // A call refused for a missing or wrong API key before it reached any service; counted in
  // dinov3_rejected_total{reason="unauthenticated"} only (its method may be any).
  void RecordUnauthenticated() { unauthenticated_->Increment(); }
  void RequestStarted() { inflight_->Increment(); }
  void RequestEnded() { inflight_->Decrement(); }

  void ObservePreprocess(const std::string& model, double seconds);
  void ObserveQueueWait(const std::string& model, double seconds);
  // One executed forward pass of `images` images of `model` on `device`.
  void RecordBatch(const std::string& model, const std::string& device, int images,
                   double inference_seconds);

  // dinov3_model_info{model, variant, dtype, device} = 1. Also creates the model's series (its
  // requests, rejections, preprocess, queue, batch and inference on `device`), so they are
  // scraped as zeros before the first request.
  void SetModelInfo(const std::string& model, const std::string& variant, const std::string& dtype,
                    const std::string& device);

  // dinov3_cpu_info{model, features} = 1: the CPU model name and its reported features
  // (comma-separated, cpu_features.h), so dashboards show why a replica is fast or slow.
  void SetCpuInfo(const std::string& model, const std::string& features);

  // dinov3_queue_capacity_images{model}: the most images the model's batching queue holds
  // (max_queue_size).
  void SetQueueCapacity(const std::string& model, int images);
  // A model that is no longer served: removes its dinov3_model_info, queue depth and queue
  // capacity series (its counters and histograms stay, as Prometheus counters should).
  void RemoveModel(const std::string& model);

  // dinov3_memory_budget_bytes = `capacity_bytes`; dinov3_memory_budget_used_bytes is read from
  // `used` at every scrape (may be null: 0).
  void SetMemoryBudget(int64_t capacity_bytes, std::function<int64_t()> used);

  // Read at every scrape; may be called again to replace (null: no series). Must be cheap and
  // thread-safe. dinov3_queue_images{model}.
  void SetQueueDepthSource(const std::string& model, std::function<int64_t()> source);
  void SetDeviceMemorySource(std::function<std::vector<DeviceMemory>()> source);

  // Everything an HTTP scrape would return: the registry, the scrape-time values and the
  // process_* metrics.
  std::vector<std::weak_ptr<prometheus::Collectable>> collectables() const;
  // The Prometheus text exposition of collectables() (for tests and debugging).
  std::string Scrape() const;

 private:
  class ScrapeTimeValues;
  void AddModelSeries(const std::string& model);

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<ScrapeTimeValues> scrape_time_;
  std::shared_ptr<prometheus::Collectable> process_;

  prometheus::Family<prometheus::Counter>* requests_;
  prometheus::Family<prometheus::Histogram>* request_duration_;
  prometheus::Family<prometheus::Counter>* rejected_;
  prometheus::Family<prometheus::Histogram>* inference_;
  prometheus::Family<prometheus::Gauge>* model_info_;
  prometheus::Family<prometheus::Gauge>* cpu_info_;
  prometheus::Family<prometheus::Histogram>* preprocess_;
  prometheus::Family<prometheus::Histogram>* queue_;
  prometheus::Family<prometheus::Histogram>* batch_size_;
  prometheus::Family<prometheus::Counter>* images_;
  prometheus::Counter* unauthenticated_;
  prometheus::Gauge* inflight_;
  prometheus::Family<prometheus::Gauge>* queue_capacity_;
  std::mutex model_info_mu_;
  std::map<std::string, std::vector<prometheus::Gauge*>> model_info_of_;  // by model
  prometheus::Gauge* memory_budget_;
};

}  // namespace dinov3::metrics

#endif  // DINOV3_SERVER_METRICS_SERVER_METRICS_H_
