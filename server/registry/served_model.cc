#include "server/registry/served_model.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "server/common/status_macros.h"
#include "server/pipeline/request_footprint.h"

namespace dinov3::registry {
namespace {

// One synthetic request at the model's default size, run through the whole pipeline.
absl::Status RunWarmUpRequest(pipeline::EmbedPipeline& model_pipeline,
                              const model::ModelMetadata& m) {
  auto pixels = std::make_shared<const std::string>(
      static_cast<size_t>(m.default_width) * m.default_height, '\x80');
  pipeline::EmbedJob job;
  job.images.push_back(pipeline::RawJobImage(
      *pixels,
      pipeline::RawPixels{m.default_width, m.default_height, preprocess::RawPixelFormat::kGray8}));
  job.settings.outputs = {.cls = true, .pooled = true, .patch_tokens = true, .registers = true};
  job.settings.preprocess.decode = model_pipeline.limits().default_decode;
  job.received_bytes = static_cast<int64_t>(pixels->size());
  job.owner = std::move(pixels);
  absl::StatusOr<MemoryBudget::Reservation> memory = model_pipeline.Admit(job);
  if (!memory.ok()) return memory.status();
  absl::Notification finished;
  absl::Status result;
  model_pipeline.Run(std::move(job), absl::InfiniteFuture(), nullptr,
                     [&](absl::Status status, pipeline::EmbedResult) {
                       result = std::move(status);
                       finished.Notify();
                     });
  finished.WaitForNotification();
  return result;
}

absl::Status Named(const std::string& name, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("model '", name, "': ", status.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServedModel>> ServedModel::Load(const ServedModelOptions& options,
                                                               metrics::ServerMetrics* metrics,
                                                               HealthCallback on_health_change) {
  if (absl::Status s = batching::ValidateBatchingOptions(options.batching); !s.ok()) {
    return Named(options.name, s);
  }
  engine::EngineOptions engine_options = options.engine;
  engine_options.warmup_max_batch_size = options.batching.max_batch_size;
  engine_options.on_batch = [metrics, name = options.name](const std::string& device, int images,
                                                           double seconds) {
    metrics->RecordBatch(name, device, images, seconds);
  };
  auto in_service = std::make_shared<std::atomic<bool>>(true);
  if (on_health_change) {
    engine_options.on_health_change = [in_service, report = std::move(on_health_change)](
                                          bool healthy) { report(healthy, *in_service); };
  }
  absl::StatusOr<std::unique_ptr<engine::ModelEngine>> engine =
      engine::ModelEngine::Load(options.path, engine_options);
  if (!engine.ok()) return Named(options.name, engine.status());
  std::unique_ptr<ServedModel> model(
      new ServedModel(options, *std::move(engine), std::move(in_service)));
  model->batcher_ =
      std::make_unique<batching::Batcher>(options.batching, model->engine_->runners());
  // Every instance loaded and warm.
  if (absl::Status s = model->batcher_->WaitUntilPrepared(); !s.ok()) {
    return Named(options.name, s);
  }
  const model::ModelMetadata& m = model->metadata();
  spdlog::info("model '{}' ({}): {}", options.name, options.path, model::DescribeModel(m));
  if (m.untrained) {
    spdlog::warn("model '{}' has RANDOM weights: its embeddings are meaningless", options.name);
  }
  return model;
}

ServedModel::ServedModel(ServedModelOptions options, std::unique_ptr<engine::ModelEngine> engine,
                         std::shared_ptr<std::atomic<bool>> in_service)
    : options_(std::move(options)),
      engine_(std::move(engine)),
      in_service_(std::move(in_service)) {}

int64_t ServedModel::InstanceTransientBytes(const pipeline::RequestLimits& limits) const {
  const bool host_input = engine_->PreparesInputOnHost();
  int64_t bytes = 0;
  for (const std::string& device : options_.engine.devices) {
    bytes += options_.engine.instances_per_device *
             pipeline::InstanceTransientBytes(device.rfind("cuda", 0) == 0, host_input,
                                              limits.image.max_pixels,
                                              limits.geometry.max_resize_pixels);
  }
  return bytes;
}

void ServedModel::PublishMetrics(metrics::ServerMetrics& metrics) const {
  const model::ModelMetadata& m = metadata();
  for (const std::string& device : engine_->DeviceNames()) {
    metrics.SetModelInfo(options_.name, m.variant, m.compute_dtype, device);
  }
  batching::Batcher* batcher = batcher_.get();
  metrics.SetQueueDepthSource(options_.name, [batcher] { return batcher->queued(); });
  metrics.SetQueueCapacity(options_.name, options_.batching.max_queue_size);
}

ServedModel::~ServedModel() { Shutdown(absl::ZeroDuration()); }

absl::Status ServedModel::Start(const SharedParts& shared) {
  const model::ModelMetadata& m = metadata();
  pipeline::RequestLimits limits = shared.limits;
  limits.model = {.embed_dim = m.embed_dim,
                  .num_registers = m.num_registers,
                  .depth = m.depth,
                  .serves_layers = m.has_forward_layers};
  limits.geometry.patch_size = m.patch_size;
  limits.geometry.default_height = m.default_height;
  limits.geometry.default_width = m.default_width;
  engine::ModelEngine* engine = engine_.get();
  pipeline_ = std::make_unique<pipeline::EmbedPipeline>(
      limits, options_.name, absl::StrCat(m.variant, "@", m.weights_sha256.substr(0, 12)),
      shared.pool, batcher_.get(), shared.budget, shared.decode_budget, shared.metrics,
      engine->PreparesInputOnHost() ? batching::PrepareInputFn([engine](batching::EmbedTask& task) {
        return engine->PrepareInput(task);
      })
                                    : batching::PrepareInputFn());
  // One request through the whole path (decode pool, batcher, an instance) before serving.
  if (absl::Status s = RunWarmUpRequest(*pipeline_, m); !s.ok()) {
    return Named(options_.name,
                 absl::Status(s.code(), absl::StrCat("warm-up request failed: ", s.message())));
  }
  description_ = {options_.name, m, limits, engine->Describe(), options_.engine.cpu};
  return absl::OkStatus();
}

void ServedModel::Shutdown(absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  if (batcher_ == nullptr) return;
  batcher_->Shutdown(grace);
  const batching::BatcherStats stats = batcher_->stats();
  spdlog::info("model '{}' ran {} batches, {} images (largest batch {})", options_.name,
               stats.batches, stats.images, stats.max_batch_size_seen);
}

}  // namespace dinov3::registry
