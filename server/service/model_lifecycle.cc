#include "server/service/model_lifecycle.h"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "config/config.h"
#include "server/service/request_footprint.h"

namespace dinov3::service {
namespace {

// How often a retiring model is checked for calls that still hold it.
constexpr absl::Duration kRetirePoll = absl::Milliseconds(5);

// The memory budget a model's instances hold for their input transients.
int64_t InstanceBytes(const ServedModel& model, const RequestLimits& limits) {
  const bool host_input = model.engine().PreparesInputOnHost();
  int64_t bytes = 0;
  for (const std::string& device : model.options().engine.devices) {
    bytes += model.options().engine.instances_per_device *
             InstanceTransientBytes(device.rfind("cuda", 0) == 0, host_input,
                                    limits.image.max_pixels, limits.geometry.max_resize_pixels);
  }
  return bytes;
}

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
  if (name.find('/') != std::string::npos || name.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: a model name is not a path ('/' and '..' are refused), got '",
                     name.substr(0, 64), "'"));
  }
  const std::string valid = config::DefaultModelName(name);
  if (name.empty() || name.size() > 64 || valid != name) {
    return absl::InvalidArgumentError(
        absl::StrCat("name: a model name has 1 to 64 letters, digits, '-', '_' or '.', got '",
                     name.substr(0, 64), "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelLifecycle::LoadAndStart(const std::string& name) {
  const std::string path = absl::StrCat(options_.repository, "/", name, ".pt");
  absl::StatusOr<std::unique_ptr<ServedModel>> loaded = ServedModel::Load(
      options_.options_for(name, path), metrics_,
      [report = options_.on_instance_health, name](bool healthy) { report(name, healthy); });
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
  const int64_t bytes = InstanceBytes(*model, shared_->limits);
  std::optional<MemoryBudget::Reservation> memory = shared_->budget->TryReserve(bytes);
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
  if (!shared_) return absl::UnavailableError("LoadModel: the server is still starting");
  const absl::Time start = absl::Now();
  const std::optional<ModelRegistry::State> state = registry_->StateOf(name);
  const bool replacing = state == ModelRegistry::State::kReady;
  spdlog::info("model '{}': {} from {}", name, replacing ? "replacing" : "loading",
               options_.repository);
  if (!replacing) {
    registry_->SetLoading(name);
    options_.set_serving(name, false);
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
  options_.set_serving(name, true);
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
  if (!shared_) return absl::UnavailableError("UnloadModel: the server is still starting");
  if (registry_->StateOf(name) != ModelRegistry::State::kReady) {
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
  options_.set_serving(name, false);
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
  const absl::Time deadline = absl::Now() + options_.grace;
  // The registry no longer hands it out: every other holder is a call it accepted.
  while (model.use_count() > 1 && absl::Now() < deadline) absl::SleepFor(kRetirePoll);
  if (model.use_count() > 1) {
    spdlog::warn("model '{}': calls still running after the {:.0f} s grace get UNAVAILABLE",
                 model->name(), absl::ToDoubleSeconds(options_.grace));
  }
  model->Shutdown(absl::ZeroDuration());  // what is still queued now gets UNAVAILABLE
  while (model.use_count() > 1) absl::SleepFor(kRetirePoll);
  model.reset();
  malloc_trim(0);  // give the freed weights back to the system now
}

}  // namespace dinov3::service
