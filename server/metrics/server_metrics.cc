#include "server/metrics/server_metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <mutex>
#include <utility>

#include "server/common/status_reason.h"
#include "server/metrics/process_collector.h"

namespace dinov3::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

const std::vector<double>& BatchSizeBuckets() {
  static const std::vector<double> buckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return buckets;
}

MetricFamily GaugeFamily(std::string name, std::string help) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = MetricType::Gauge;
  return family;
}

void AddGauge(MetricFamily& family, double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family.metric.push_back(std::move(metric));
}

}  // namespace

// Gauges whose value is read when Prometheus scrapes: the queue depth, the memory budget in use
// and device memory.
class ServerMetrics::ScrapeTimeValues final : public prometheus::Collectable {
 public:
  void SetQueueDepthSource(std::function<int64_t()> source) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_depth_ = std::move(source);
  }
  void SetDeviceMemorySource(std::function<std::vector<DeviceMemory>()> source) {
    std::lock_guard<std::mutex> lock(mu_);
    device_memory_ = std::move(source);
  }
  void SetMemoryBudgetUsedSource(std::function<int64_t()> source) {
    std::lock_guard<std::mutex> lock(mu_);
    budget_used_ = std::move(source);
  }

  std::vector<MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<MetricFamily> families;
    MetricFamily queue = GaugeFamily("dinov3_queue_images",
                                     "Images waiting in the batching queue for a model instance.");
    AddGauge(queue, queue_depth_ ? static_cast<double>(queue_depth_()) : 0);
    families.push_back(std::move(queue));
    MetricFamily budget = GaugeFamily(
        "dinov3_memory_budget_used_bytes",
        "Bytes reserved by accepted requests in the memory budget (limits.memory_budget_bytes).");
    AddGauge(budget, budget_used_ ? static_cast<double>(budget_used_()) : 0);
    families.push_back(std::move(budget));
    if (!device_memory_) return families;
    const std::vector<DeviceMemory> devices = device_memory_();
    if (devices.empty()) return families;
    MetricFamily allocated = GaugeFamily(
        "dinov3_device_memory_allocated_bytes",
        "Device memory held by tensors, from the caching allocator (CUDA devices only).");
    MetricFamily reserved = GaugeFamily(
        "dinov3_device_memory_reserved_bytes",
        "Device memory reserved by the caching allocator, allocated or cached (CUDA only).");
    for (const DeviceMemory& d : devices) {
      AddGauge(allocated, static_cast<double>(d.allocated_bytes), {{"device", d.device}});
      AddGauge(reserved, static_cast<double>(d.reserved_bytes), {{"device", d.device}});
    }
    families.push_back(std::move(allocated));
    families.push_back(std::move(reserved));
    return families;
  }

 private:
  mutable std::mutex mu_;
  std::function<int64_t()> queue_depth_;
  std::function<int64_t()> budget_used_;
  std::function<std::vector<DeviceMemory>()> device_memory_;
};

ServerMetrics::ServerMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()),
      scrape_time_(std::make_shared<ScrapeTimeValues>()),
      process_(MakeProcessCollector()) {
  prometheus::Registry& r = *registry_;
  requests_ = &prometheus::BuildCounter()
                   .Name("dinov3_requests_total")
                   .Help(
                       "Finished requests by RPC method and gRPC status code (one per "
                       "StreamEmbed message).")
                   .Register(r);
  request_duration_ = &prometheus::BuildHistogram()
                           .Name("dinov3_request_duration_seconds")
                           .Help("Time from receiving a request to its answer, in the server.")
                           .Register(r);
  rejected_ = &prometheus::BuildCounter()
                   .Name("dinov3_rejected_total")
                   .Help(
                       "Requests refused or failed because of the request or the load, by "
                       "reason.")
                   .Register(r);
  inference_ = &prometheus::BuildHistogram()
                    .Name("dinov3_inference_duration_seconds")
                    .Help(
                        "One executed batch: inputs resized and normalised on the device, then the "
                        "forward pass.")
                    .Register(r);
  model_info_ = &prometheus::BuildGauge()
                     .Name("dinov3_model_info")
                     .Help("The loaded model (always 1).")
                     .Register(r);
  cpu_info_ = &prometheus::BuildGauge()
                   .Name("dinov3_cpu_info")
                   .Help("The server's CPU model and its reduced-precision features (always 1).")
                   .Register(r);
  preprocess_ = &prometheus::BuildHistogram()
                     .Name("dinov3_preprocess_duration_seconds")
                     .Help("Decoding and resize planning of one image on the preprocess pool.")
                     .Register(r)
                     .Add({}, DurationBuckets());
  queue_ = &prometheus::BuildHistogram()
                .Name("dinov3_queue_duration_seconds")
                .Help("Time one image waited in the batching queue before its batch ran.")
                .Register(r)
                .Add({}, DurationBuckets());
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("dinov3_batch_size")
                     .Help("Images per executed forward pass.")
                     .Register(r)
                     .Add({}, BatchSizeBuckets());
  images_ = &prometheus::BuildCounter()
                 .Name("dinov3_images_total")
                 .Help("Images that went through the model.")
                 .Register(r)
                 .Add({});
  inflight_ = &prometheus::BuildGauge()
                   .Name("dinov3_inflight_requests")
                   .Help("Requests accepted and not yet answered.")
                   .Register(r)
                   .Add({});
  queue_capacity_ = &prometheus::BuildGauge()
                         .Name("dinov3_queue_capacity_images")
                         .Help(
                             "Most images the batching queue holds (batching.max_queue_size); "
                             "beyond it requests get RESOURCE_EXHAUSTED.")
                         .Register(r)
                         .Add({});
  memory_budget_ = &prometheus::BuildGauge()
                        .Name("dinov3_memory_budget_bytes")
                        .Help(
                            "The memory budget of accepted requests (limits.memory_budget_bytes); "
                            "beyond it requests get RESOURCE_EXHAUSTED.")
                        .Register(r)
                        .Add({});
  // Series that exist from the start, so that rate() and dashboards see zeros, not gaps.
  for (const char* reason : kAllReasons) rejected_->Add({{"reason", reason}});
  unauthenticated_ = &rejected_->Add({{"reason", kReasonUnauthenticated}});
  for (const char* method : {"Embed", "StreamEmbed", "EmbedDense", "GetModelInfo"}) {
    requests_->Add({{"method", method}, {"code", "OK"}});
    request_duration_->Add({{"method", method}}, DurationBuckets());
  }
  prometheus::BuildGauge()
      .Name("dinov3_build_info")
      .Help("The server build (always 1).")
      .Register(r)
      .Add({{"version", version}})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::RecordRequest(std::string_view method, std::string_view code, double seconds,
                                  std::string_view reason) {
  const std::string method_name(method);
  requests_->Add({{"method", method_name}, {"code", std::string(code)}}).Increment();
  request_duration_->Add({{"method", method_name}}, DurationBuckets()).Observe(seconds);
  if (!reason.empty()) rejected_->Add({{"reason", std::string(reason)}}).Increment();
}

void ServerMetrics::RecordBatch(const std::string& device, int images, double inference_seconds) {
  batch_size_->Observe(images);
  images_->Increment(images);
  inference_->Add({{"device", device}}, DurationBuckets()).Observe(inference_seconds);
}

void ServerMetrics::SetCpuInfo(const std::string& model, const std::string& features) {
  cpu_info_->Add({{"model", model}, {"features", features}}).Set(1);
}

void ServerMetrics::SetModelInfo(const std::string& variant, const std::string& dtype,
                                 const std::string& device) {
  model_info_->Add({{"variant", variant}, {"dtype", dtype}, {"device", device}}).Set(1);
  inference_->Add({{"device", device}}, DurationBuckets());
}

void ServerMetrics::SetQueueDepthSource(std::function<int64_t()> source) {
  scrape_time_->SetQueueDepthSource(std::move(source));
}

void ServerMetrics::SetMemoryBudget(int64_t capacity_bytes, std::function<int64_t()> used) {
  memory_budget_->Set(static_cast<double>(capacity_bytes));
  scrape_time_->SetMemoryBudgetUsedSource(std::move(used));
}

void ServerMetrics::SetDeviceMemorySource(std::function<std::vector<DeviceMemory>()> source) {
  scrape_time_->SetDeviceMemorySource(std::move(source));
}

std::vector<std::weak_ptr<prometheus::Collectable>> ServerMetrics::collectables() const {
  return {registry_, scrape_time_, process_};
}

std::string ServerMetrics::Scrape() const {
  std::vector<MetricFamily> families;
  for (const auto& weak : collectables()) {
    if (auto collectable = weak.lock()) {
      for (MetricFamily& family : collectable->Collect()) families.push_back(std::move(family));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace dinov3::metrics
