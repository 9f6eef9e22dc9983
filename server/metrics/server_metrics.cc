#include "server/metrics/server_metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <map>
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

std::string_view ProtocolOfMethod(std::string_view method) {
  if (method == "ModelInfer" || method == "ModelMetadata") return "oip-grpc";
  if (method == "RestModelInfer") return "oip-rest";
  if (method == "OpenAIEmbeddings") return "openai";
  return "dinov3";
}

// Gauges whose value is read when Prometheus scrapes: the queue depth, the memory budget in use
// and device memory.
class ServerMetrics::ScrapeTimeValues final : public prometheus::Collectable {
 public:
  void SetQueueDepthSource(const std::string& model, std::function<int64_t()> source) {
    std::lock_guard<std::mutex> lock(mu_);
    if (source) {
      queue_depth_[model] = std::move(source);
    } else {
      queue_depth_.erase(model);
    }
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
    for (const auto& [model, depth] : queue_depth_) {
      AddGauge(queue, static_cast<double>(depth()), {{"model", model}});
    }
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
  std::map<std::string, std::function<int64_t()>> queue_depth_;  // by model
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
                       "Finished requests by method (a dinov3.v1 RPC, ModelInfer / "
                       "RestModelInfer of the Open Inference Protocol, OpenAIEmbeddings), "
                       "protocol (dinov3, oip-grpc, oip-rest, openai) and status code (one per "
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
                     .Register(r);
  queue_ = &prometheus::BuildHistogram()
                .Name("dinov3_queue_duration_seconds")
                .Help("Time one image waited in the batching queue before its batch ran.")
                .Register(r);
  batch_size_ = &prometheus::BuildHistogram()
                     .Name("dinov3_batch_size")
                     .Help("Images per executed forward pass.")
                     .Register(r);
  images_ = &prometheus::BuildCounter()
                 .Name("dinov3_images_total")
                 .Help("Images that went through the model.")
                 .Register(r);
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
                         .Register(r);
  memory_budget_ = &prometheus::BuildGauge()
                        .Name("dinov3_memory_budget_bytes")
                        .Help(
                            "The memory budget of accepted requests (limits.memory_budget_bytes); "
                            "beyond it requests get RESOURCE_EXHAUSTED.")
                        .Register(r)
                        .Add({});
  // A refused key never reaches a model: its series has an empty model label.
  unauthenticated_ = &rejected_->Add({{"reason", kReasonUnauthenticated}, {"model", ""}});
  AddModelSeries(kUnknownModel);
  prometheus::BuildGauge()
      .Name("dinov3_build_info")
      .Help("The server build (always 1).")
      .Register(r)
      .Add({{"version", version}})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

// Series that exist from the model's start, so that rate() and dashboards see zeros, not gaps.
void ServerMetrics::AddModelSeries(const std::string& model) {
  for (const char* reason : kAllReasons) {
    if (std::string_view(reason) == kReasonUnauthenticated) continue;  // counted under ""
    rejected_->Add({{"reason", reason}, {"model", model}});
  }
  // The native API's calls and those of the other front doors (server/kserve, server/openai).
  for (const char* method : {"Embed", "StreamEmbed", "EmbedDense", "GetModelInfo", "ModelInfer",
                             "RestModelInfer", "OpenAIEmbeddings"}) {
    const std::string protocol(ProtocolOfMethod(method));
    requests_->Add({{"method", method}, {"code", "OK"}, {"model", model}, {"protocol", protocol}});
    request_duration_->Add({{"method", method}, {"model", model}, {"protocol", protocol}},
                           DurationBuckets());
  }
  if (model == kUnknownModel) return;
  preprocess_->Add({{"model", model}}, DurationBuckets());
  queue_->Add({{"model", model}}, DurationBuckets());
  batch_size_->Add({{"model", model}}, BatchSizeBuckets());
  images_->Add({{"model", model}});
}

void ServerMetrics::RecordRequest(std::string_view method, std::string_view model,
                                  std::string_view code, double seconds, std::string_view reason) {
  const std::string method_name(method);
  const std::string model_name(model);
  const std::string protocol(ProtocolOfMethod(method));
  requests_
      ->Add({{"method", method_name},
             {"code", std::string(code)},
             {"model", model_name},
             {"protocol", protocol}})
      .Increment();
  request_duration_
      ->Add({{"method", method_name}, {"model", model_name}, {"protocol", protocol}},
            DurationBuckets())
      .Observe(seconds);
  if (!reason.empty()) {
    rejected_->Add({{"reason", std::string(reason)}, {"model", model_name}}).Increment();
  }
}

void ServerMetrics::ObservePreprocess(const std::string& model, double seconds) {
  preprocess_->Add({{"model", model}}, DurationBuckets()).Observe(seconds);
}

void ServerMetrics::ObserveQueueWait(const std::string& model, double seconds) {
  queue_->Add({{"model", model}}, DurationBuckets()).Observe(seconds);
}

void ServerMetrics::RecordBatch(const std::string& model, const std::string& device, int images,
                                double inference_seconds) {
  batch_size_->Add({{"model", model}}, BatchSizeBuckets()).Observe(images);
  images_->Add({{"model", model}}).Increment(images);
  inference_->Add({{"model", model}, {"device", device}}, DurationBuckets())
      .Observe(inference_seconds);
}

void ServerMetrics::SetCpuInfo(const std::string& model, const std::string& features) {
  cpu_info_->Add({{"model", model}, {"features", features}}).Set(1);
}

void ServerMetrics::SetModelInfo(const std::string& model, const std::string& variant,
                                 const std::string& dtype, const std::string& device) {
  prometheus::Gauge& info = model_info_->Add(
      {{"model", model}, {"variant", variant}, {"dtype", dtype}, {"device", device}});
  info.Set(1);
  {
    std::lock_guard<std::mutex> lock(model_info_mu_);
    std::vector<prometheus::Gauge*>& infos = model_info_of_[model];
    if (std::find(infos.begin(), infos.end(), &info) == infos.end()) infos.push_back(&info);
  }
  inference_->Add({{"model", model}, {"device", device}}, DurationBuckets());
  AddModelSeries(model);
}

void ServerMetrics::SetQueueCapacity(const std::string& model, int images) {
  queue_capacity_->Add({{"model", model}}).Set(images);
}

void ServerMetrics::RemoveModel(const std::string& model) {
  {
    std::lock_guard<std::mutex> lock(model_info_mu_);
    auto it = model_info_of_.find(model);
    if (it != model_info_of_.end()) {
      for (prometheus::Gauge* info : it->second) model_info_->Remove(info);
      model_info_of_.erase(it);
    }
  }
  queue_capacity_->Remove(&queue_capacity_->Add({{"model", model}}));
  scrape_time_->SetQueueDepthSource(model, nullptr);
}

void ServerMetrics::SetQueueDepthSource(const std::string& model, std::function<int64_t()> source) {
  scrape_time_->SetQueueDepthSource(model, std::move(source));
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
