// Loads, replaces and unloads served models while the server runs (the ModelAdmin RPCs).
//
// Load(name): <repository>/<name>.pt with the settings options_for(name) gives; a name already
// served is replaced: the new export is loaded and warmed beside the old one, the registry then
// hands every new request to it, and the old one is retired. Unload(name): the registry refuses
// new requests for it (NOT_FOUND), then it is retired. Retiring a model: it stops reporting
// health, the calls that hold it finish (up to the grace period; after that its queue answers
// UNAVAILABLE), then it is shut down and freed here, on the caller's thread, never on one of its
// own workers. A failed load leaves what is served untouched.
//
// One operation at a time (calls serialise on a mutex); they block for the whole load or
// retirement, so the caller is a worker thread, never a gRPC handler. The registry, shared
// parts and metrics must outlive this object.
#ifndef DINOV3_SERVER_REGISTRY_MODEL_LIFECYCLE_H_
#define DINOV3_SERVER_REGISTRY_MODEL_LIFECYCLE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/registry/model_registry.h"
#include "server/registry/served_model.h"

namespace dinov3::registry {

struct ModelLifecycleOptions {
  std::string repository;                    // where Load finds <name>.pt; "" = Load is refused
  absl::Duration grace = absl::Seconds(30);  // for a retiring model's accepted work
  // The settings of a model loaded as `name` from `path` (its configured ones, or defaults).
  std::function<ServedModelOptions(const std::string& name, const std::string& path)> options_for;
  // Sets the health entry of `name` (and the whole service's when it is the default); with
  // `leaving` (not null), first makes that model LeaveService, in the same step, so that none
  // of its late health reports can override this one.
  std::function<void(const std::string& name, bool serving, ServedModel* leaving)> set_serving;
  // The instance health callback of a loaded model (ServedModel::HealthCallback).
  std::function<void(const std::string& name, bool healthy, const std::atomic<bool>& in_service)>
      on_instance_health;
};

class ModelLifecycle {
 public:
  ModelLifecycle(ModelLifecycleOptions options, ModelRegistry* registry,
                 metrics::ServerMetrics* metrics);

  // Until this is called (once the start-up models serve) Load and Unload are Unavailable.
  // `host_input_budget`: whether the preprocessing budget is sized for models whose inputs
  // are built on the host (CPU models); without it such a model cannot be loaded.
  void Enable(const SharedParts& shared, bool host_input_budget);
  // The server is shutting down: Load and Unload answer Unavailable from now on, and a model
  // being retired gives its calls until `deadline` at most. Does not wait for the operation
  // in progress. Thread-safe.
  void Stop(absl::Time deadline);

  struct Loaded {
    bool replaced = false;
    double switch_seconds = 0;  // from the call to the registry serving the new export
    double retire_seconds = 0;  // then, until the replaced export was freed
  };
  absl::StatusOr<Loaded> Load(const std::string& name);
  // Seconds until the model was freed. NotFound when `name` is not served;
  // FailedPrecondition for the default model.
  absl::StatusOr<double> Unload(const std::string& name);

  // InvalidArgument unless `name` is a valid model name (no '/', not "." or "..").
  static absl::Status CheckName(const std::string& name);

 private:
  absl::StatusOr<std::shared_ptr<ServedModel>> LoadAndStart(const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits for the calls holding `model` (up to the grace), shuts it down and frees it.
  void Retire(std::shared_ptr<ServedModel> model) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckRunning(const char* method) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Time StopDeadline() const;

  const ModelLifecycleOptions options_;
  ModelRegistry* const registry_;
  metrics::ServerMetrics* const metrics_;
  absl::Mutex mu_;  // one operation at a time
  std::optional<SharedParts> shared_ ABSL_GUARDED_BY(mu_);
  bool host_input_budget_ ABSL_GUARDED_BY(mu_) = false;
  mutable absl::Mutex stop_mu_;  // not mu_: Stop must not wait for an operation
  absl::Time stop_deadline_ ABSL_GUARDED_BY(stop_mu_) = absl::InfiniteFuture();
};

}  // namespace dinov3::registry

#endif  // DINOV3_SERVER_REGISTRY_MODEL_LIFECYCLE_H_
