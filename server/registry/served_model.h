// One model the server serves: its engine (the instances on their devices), its own batching
// queue and its pipeline, so batches never mix models. Loading is two steps because the
// server-wide parts depend on every model: Load (engine, batcher, every instance warm on its
// dispatch thread), then Start (the pipeline on the shared preprocess pool and memory budget,
// one warm-up request through the whole path, its ModelDescription). Shutdown(grace) lets the
// accepted work finish (within `grace`, then UNAVAILABLE) and stops the instances. A model that
// leaves service (LeaveService) no longer reports its instances' health.
// The shared parts (pool, budgets, metrics) must outlive the model. Thread-safe after Start.
#ifndef DINOV3_SERVER_REGISTRY_SERVED_MODEL_H_
#define DINOV3_SERVER_REGISTRY_SERVED_MODEL_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/batching/batcher.h"
#include "server/common/memory_budget.h"
#include "server/engine/model_engine.h"
#include "server/metrics/server_metrics.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/pipeline/thread_pool.h"
#include "server/registry/model_description.h"

namespace dinov3::registry {

struct ServedModelOptions {
  std::string name;  // what clients send as EmbedRequest.model
  std::string path;  // the export
  engine::EngineOptions engine;
  batching::BatchingOptions batching;
};

// What every model shares, owned by the server.
struct SharedParts {
  pipeline::RequestLimits limits;  // the server's limits; Start fills in each model's shape
  pipeline::ThreadPool* pool = nullptr;
  MemoryBudget* budget = nullptr;
  MemoryBudget* decode_budget = nullptr;
  metrics::ServerMetrics* metrics = nullptr;
};

class ServedModel {
 public:
  // Loads the export and warms every instance up. `on_health_change` (may be empty) is called
  // as EngineOptions::on_health_change of this model, with the model's in-service flag: a
  // report made when it is false (after LeaveService) must be ignored, and the caller reads it
  // under the same lock as the one it holds around LeaveService. Errors name the model.
  using HealthCallback = std::function<void(bool healthy, const std::atomic<bool>& in_service)>;
  static absl::StatusOr<std::unique_ptr<ServedModel>> Load(const ServedModelOptions& options,
                                                           metrics::ServerMetrics* metrics,
                                                           HealthCallback on_health_change);
  ~ServedModel();  // Shutdown(absl::ZeroDuration())

  // Creates the pipeline and runs one warm-up request through it; `shared` must outlive this.
  absl::Status Start(const SharedParts& shared);

  const std::string& name() const { return options_.name; }
  const ServedModelOptions& options() const { return options_; }
  const model::ModelMetadata& metadata() const { return engine_->metadata(); }
  engine::ModelEngine& engine() const { return *engine_; }
  batching::Batcher& batcher() const { return *batcher_; }
  // After Start.
  pipeline::EmbedPipeline& pipeline() const { return *pipeline_; }
  const ModelDescription& description() const { return description_; }

  // Its dinov3_model_info series and its queue's depth and capacity (ServerMetrics), under
  // its name: a model being served publishes them; ServerMetrics::RemoveModel withdraws them.
  void PublishMetrics(metrics::ServerMetrics& metrics) const;
  // From now on its health changes are not reported (another export serves the name, or none).
  void LeaveService() { in_service_->store(false); }
  // The memory budget its instances' input transients need (request_footprint.h), and the
  // reservation of it that the model holds while it lives.
  int64_t InstanceTransientBytes(const pipeline::RequestLimits& limits) const;
  void HoldMemory(MemoryBudget::Reservation memory) { memory_ = std::move(memory); }
  void Shutdown(absl::Duration grace);

 private:
  ServedModel(ServedModelOptions options, std::unique_ptr<engine::ModelEngine> engine,
              std::shared_ptr<std::atomic<bool>> in_service);

  const ServedModelOptions options_;
  std::unique_ptr<engine::ModelEngine> engine_;
  std::unique_ptr<batching::Batcher> batcher_;
  std::unique_ptr<pipeline::EmbedPipeline> pipeline_;
  ModelDescription description_;
  const std::shared_ptr<std::atomic<bool>> in_service_;  // read by the health callback
  MemoryBudget::Reservation memory_;                     // returned when the model is freed
  bool shut_down_ = false;
};

}  // namespace dinov3::registry

#endif  // DINOV3_SERVER_REGISTRY_SERVED_MODEL_H_
