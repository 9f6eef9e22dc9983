#include "server/engine/model_engine.h"

#include <malloc.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "model/runtime/model_runtime.h"
#include "server/common/usable_cpus.h"
#include "server/engine/compute_dtype.h"
#include "server/engine/device_stream.h"
#include "server/engine/health_aggregator.h"
#include "server/engine/host_input.h"
#include "server/engine/model_worker.h"

namespace dinov3::engine {
namespace {

class LoadedEngine : public ModelEngine {
 public:
  LoadedEngine(std::vector<std::unique_ptr<model::ModelRuntime>> runtimes, std::string description,
               const EngineOptions& options)
      : runtimes_(std::move(runtimes)),
        description_(std::move(description)),
        health_(options.on_health_change),
        on_batch_(options.on_batch),
        norm_{runtimes_.front()->metadata().image_mean, runtimes_.front()->metadata().image_std},
        host_input_(std::all_of(runtimes_.begin(), runtimes_.end(),
                                [](const auto& runtime) { return runtime->device().is_cpu(); })) {}

  // Called by Load for each instance, before the engine is shared.
  void AddWorker(const model::ModelRuntime* runtime, int intra_op_threads, int warmup_batch) {
    WorkerOptions options;
    options.intra_op_threads = intra_op_threads;
    options.warmup_max_batch_size = warmup_batch;
    if (health_.enabled()) {
      options.on_health_change = [this](bool healthy) { health_.Report(healthy); };
    }
    options.on_batch = on_batch_;
    workers_.push_back(std::make_unique<ModelWorker>(runtime, std::move(options)));
  }

  const model::ModelMetadata& metadata() const override { return runtimes_.front()->metadata(); }
  std::string Describe() const override { return description_; }
  std::vector<std::string> DeviceNames() const override {
    std::vector<std::string> names;
    for (const auto& runtime : runtimes_) {
      std::string name = runtime->device().str();
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    return names;
  }
  std::vector<DeviceMemory> DeviceMemoryUsage() const override {
    std::vector<DeviceMemory> usage;
    std::set<std::string> seen;
    for (const auto& runtime : runtimes_) {
      std::optional<DeviceMemory> memory = DeviceMemoryOf(runtime->device());
      if (memory && seen.insert(memory->device).second) usage.push_back(*std::move(memory));
    }
    return usage;
  }
  std::vector<batching::BatchRunner*> runners() override {
    std::vector<batching::BatchRunner*> runners;
    for (const auto& worker : workers_) runners.push_back(worker.get());
    return runners;
  }
  bool PreparesInputOnHost() const override { return host_input_; }
  absl::Status PrepareInput(batching::EmbedTask& task) const override {
    return PrepareHostInput(task, norm_);
  }

 private:
  const std::vector<std::unique_ptr<model::ModelRuntime>> runtimes_;
  const std::string description_;
  HealthAggregator health_;
  const std::function<void(const std::string&, int, double)> on_batch_;
  const Normalization norm_;
  const bool host_input_;
  std::vector<std::unique_ptr<ModelWorker>> workers_;  // after runtimes_: destroyed first
};

// The usable CPUs (the affinity mask and the container's CPU quota) shared by the instances.
int CoresPerInstance(int instances) { return std::max(1, DetectUsableCpus().count / instances); }

absl::Status ValidateOptions(const EngineOptions& options) {
  if (options.devices.empty()) return absl::InvalidArgumentError("engine: no devices given");
  if (options.instances_per_device < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "engine: instances per device must be at least 1, got ", options.instances_per_device));
  }
  if (options.intra_op_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "engine: intra-op threads must be 0 (automatic) or more, got ", options.intra_op_threads));
  }
  if (options.warmup_max_batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "engine: warm-up batch size must be at least 1, got ", options.warmup_max_batch_size));
  }
  return absl::OkStatus();
}

}  // namespace

void ReleaseCachedMemory() {
  EmptyDeviceCaches();
  malloc_trim(0);
}

absl::StatusOr<std::unique_ptr<ModelEngine>> ModelEngine::Load(const std::string& path,
                                                               const EngineOptions& options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  absl::StatusOr<model::ModelMetadata> metadata = model::ModelRuntime::ReadMetadata(path);
  if (!metadata.ok()) return metadata.status();
  // One copy of the weights per device, shared by that device's instances (ModelRuntime's
  // Forward may run on several threads at once).
  std::vector<std::unique_ptr<model::ModelRuntime>> runtimes;
  for (const std::string& device : options.devices) {
    // probe=false: each instance warms up on its own dispatch thread (PrepareThread).
    absl::StatusOr<std::unique_ptr<model::ModelRuntime>> runtime = model::ModelRuntime::Load(
        path, device, /*probe=*/false,
        ResolveComputeDtype(options.compute_dtype, metadata->dtype,
                            absl::StartsWith(device, "cuda"), options.cpu));
    if (!runtime.ok()) return runtime.status();
    runtimes.push_back(*std::move(runtime));
  }
  int cpu_instances = 0;
  for (const auto& runtime : runtimes) {
    cpu_instances += runtime->device().is_cpu() ? options.instances_per_device : 0;
  }
  const int cpu_threads = options.intra_op_threads > 0
                              ? options.intra_op_threads
                              : CoresPerInstance(std::max(1, cpu_instances));
  std::vector<std::string> parts;
  for (const std::string& device : options.devices) {
    parts.push_back(absl::StrCat(device, " x", options.instances_per_device));
  }
  std::string description = absl::StrJoin(parts, ", ");
  if (cpu_instances > 0) absl::StrAppend(&description, " (intra-op threads ", cpu_threads, ")");

  std::vector<const model::ModelRuntime*> instances;  // devices in order, then instances
  for (const auto& runtime : runtimes) {
    for (int i = 0; i < options.instances_per_device; ++i) instances.push_back(runtime.get());
  }
  auto engine =
      std::make_unique<LoadedEngine>(std::move(runtimes), std::move(description), options);
  for (const model::ModelRuntime* runtime : instances) {
    // CUDA instances only copy pixels on the host: one thread, so no idle OpenMP pool spins.
    const int threads = runtime->device().is_cpu()     ? cpu_threads
                        : options.intra_op_threads > 0 ? options.intra_op_threads
                                                       : 1;
    engine->AddWorker(runtime, threads, options.warmup_max_batch_size);
  }
  return engine;
}

}  // namespace dinov3::engine
