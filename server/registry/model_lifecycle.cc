#include "server/registry/model_lifecycle.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "config/config.h"

namespace dinov3::registry {
namespace {

// How often a retiring model is checked for calls that still hold it.
constexpr absl::Duration kRetirePoll = absl::Milliseconds(5);

}  // namespace

ModelLifecycle::ModelLifecycle(ModelLifecycleOptions options, ModelRegistry* registry,
                               metrics::ServerMetrics* metrics)
    : options_(std::move(options)), registry_(registry), metrics_(metrics) {}

void ModelLifecycle::Enable(const SharedParts& shared, bool host_input_budget) {
  absl::MutexLock lock(&mu_);
  shared_ = shared;
  host_input_budget_ = host_input_budget;
}

absl::Status ModelLifecycle::CheckName(const std::string& name) {
  if (config::IsValidModelName(name)) return absl::OkStatus();
  const std::string shown = absl::StrCat("'", absl::CHexEscape(name.substr(0, 64)), "'");
  if (name.find('/') != std::string::npos || name == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("name: a model name is not a path ('/' and '..' are refused), got ", shown));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "name: a model name has 1 to 64 letters, digits, '-', '_' or '.' (not . or ..), got ",
      shown));
}

void ModelLifecycle::Stop(absl::Time deadline) {
  absl::MutexLock lock(&stop_mu_);
  stop_deadline_ = std::min(stop_deadline_, deadline);
}

absl::Time ModelLifecycle::StopDeadline() const {
  absl::MutexLock lock(&stop_mu_);
  return stop_deadline_;
}

absl::Status ModelLifecycle::CheckRunning(const char* method) const {
  if (!shared_) return absl::UnavailableError(absl::StrCat(method, ": the server is starting"));
  if (StopDeadline() != absl::InfiniteFuture()) {
    return absl::UnavailableError(absl::StrCat(method, ": the server is shutting down"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelLifecycle::LoadAndStart(const std::string& name) {
  const std::string path = absl::StrCat(options_.repository, "/", name, ".pt");
  absl::StatusOr<std::unique_ptr<ServedModel>> loaded = ServedModel::Load(
      options_.options_for(name, path), metrics_,
      [report = options_.on_instance_health, name](bool healthy, const auto& in_service) {
        report(name, healthy, in_service);
      });
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat(path, ": ", loaded.status().message()));
  }
  std::shared_ptr<ServedModel> model = *std::move(loaded);
  if (model->engine().PreparesInputOnHost() && !host_input_budget_) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": model '", name,
        "' runs on the CPU, and this server's preprocessing budget was "
        "sized for GPU models only; configure a CPU model at start-up to load CPU models"));
  }
  const int64_t bytes = model->InstanceTransientBytes(shared_->limits);
  std::optional<MemoryBudget::Reservation> memory = shared_->budget->TryReserveHeld(bytes);
  if (!memory) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": model '", name, "' needs ", bytes,
                     " bytes of the memory budget "
                     "(limits.memory_budget_bytes) for its instances, which is not free now"));
  }
  model->HoldMemory(*std::move(memory));
  if (absl::Status s = model->Start(*shared_); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
  }
  return model;
}

absl::StatusOr<ModelLifecycle::Loaded> ModelLifecycle::Load(const std::string& name) {
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  if (options_.repository.empty()) {
    return absl::FailedPreconditionError(
        "LoadModel: no model repository (admin.model_repository) is configured");
  }
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckRunning("LoadModel"); !s.ok()) return s;
  const absl::Time start = absl::Now();
  const std::optional<ModelRegistry::State> state = registry_->StateOf(name);
  const bool replacing = state == ModelRegistry::State::kReady;
  if (state == ModelRegistry::State::kLoading || state == ModelRegistry::State::kUnloading) {
    return absl::UnavailableError(
        absl::StrCat("LoadModel: model '", name, "' is still loading or unloading; retry"));
  }
  spdlog::info("model '{}': {} from {}", name, replacing ? "replacing" : "loading",
               options_.repository);
  if (!replacing) {
    registry_->SetLoading(name);
    options_.set_serving(name, false, nullptr);
  }
  absl::StatusOr<std::shared_ptr<ServedModel>> model = LoadAndStart(name);
  if (!model.ok()) {
    spdlog::error("model '{}': load failed: {}", name, std::string(model.status().message()));
    if (!replacing) registry_->SetFailed(name, std::string(model.status().message()));
    return model.status();
  }
  if (replacing) metrics_->RemoveModel(name);
  std::shared_ptr<ServedModel> old = registry_->SetReady(name, *model);
  (*model)->PublishMetrics(*metrics_);
  options_.set_serving(name, true, old.get());  // the old export's health no longer counts
  Loaded loaded{.replaced = old != nullptr,
                .switch_seconds = absl::ToDoubleSeconds(absl::Now() - start)};
  spdlog::info("model '{}': {} serves it after {:.2f} s ({})", name,
               (*model)->pipeline().export_id(), loaded.switch_seconds,
               (*model)->engine().Describe());
  if (old != nullptr) {
    const absl::Time retire_start = absl::Now();
    Retire(std::move(old));
    loaded.retire_seconds = absl::ToDoubleSeconds(absl::Now() - retire_start);
    spdlog::info("model '{}': the replaced export finished its work and was freed in {:.2f} s",
                 name, loaded.retire_seconds);
  }
  return loaded;
}

absl::StatusOr<double> ModelLifecycle::Unload(const std::string& name) {
  if (absl::Status s = CheckName(name); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckRunning("UnloadModel"); !s.ok()) return s;
  const std::optional<ModelRegistry::State> state = registry_->StateOf(name);
  if (state == ModelRegistry::State::kFailed) {  // a failed load: forget it
    registry_->Remove(name);
    spdlog::info("model '{}': its failed load was forgotten", name);
    return 0.0;
  }
  if (state != ModelRegistry::State::kReady) {
    return absl::NotFoundError(absl::StrCat("UnloadModel: no model '", name, "' is served"));
  }
  if (name == registry_->default_name()) {
    return absl::FailedPreconditionError(
        absl::StrCat("UnloadModel: '", name,
                     "' is the default model and cannot be unloaded; "
                     "load a new export over it (LoadModel) to replace it"));
  }
  const absl::Time start = absl::Now();
  std::shared_ptr<ServedModel> model = registry_->SetUnloading(name);
  options_.set_serving(name, false, model.get());
  metrics_->RemoveModel(name);
  spdlog::info("model '{}': unloading; new requests for it get NOT_FOUND", name);
  Retire(std::move(model));
  registry_->Remove(name);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  spdlog::info("model '{}': unloaded and freed in {:.2f} s", name, seconds);
  return seconds;
}

void ModelLifecycle::Retire(std::shared_ptr<ServedModel> model) {
  model->LeaveService();
  // The registry no longer hands it out: every other holder is a call it accepted. They get
  // the grace, cut short when the server shuts down.
  const absl::Time deadline = std::min(absl::Now() + options_.grace, StopDeadline());
  while (model.use_count() > 1 && absl::Now() < deadline) absl::SleepFor(kRetirePoll);
  if (model.use_count() > 1) {
    spdlog::warn("model '{}': calls still running after the grace get UNAVAILABLE", model->name());
  }
  model->Shutdown(absl::ZeroDuration());  // what is still queued now gets UNAVAILABLE
  while (model.use_count() > 1) absl::SleepFor(kRetirePoll);
  model.reset();
  engine::ReleaseCachedMemory();  // the freed weights go back to the system (and the GPU) now
}

}  // namespace dinov3::registry
