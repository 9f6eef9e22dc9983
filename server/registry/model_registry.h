// The served models by name, each with its state, and which one is the default. Lookups hand
// out shared pointers: a call holds its model until it is answered, so a model that is
// unloaded or replaced lives on until the last call it accepted is done.
// Names are those of the configuration (or, later, the model repository); a request's name is
// only looked up, never stored. Thread-safe (one mutex); protocol-free.
#ifndef DINOV3_SERVER_REGISTRY_MODEL_REGISTRY_H_
#define DINOV3_SERVER_REGISTRY_MODEL_REGISTRY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "server/registry/served_model.h"

namespace dinov3::registry {

class ModelRegistry {
 public:
  enum class State { kLoading, kReady, kUnloading, kFailed };
  struct Entry {
    std::string name;
    State state = State::kLoading;
    std::string message;                          // why it failed
    std::shared_ptr<ServedModel> model;           // set while ready
    std::optional<ModelDescription> description;  // while ready or unloading
  };

  explicit ModelRegistry(std::string default_name) : default_name_(std::move(default_name)) {}

  // The ready model a request naming `name` ("" = the default) runs on. NotFound for a name
  // that is not served (failed, unloading or unknown), naming the served ones; Unavailable
  // while it is loading.
  absl::StatusOr<std::shared_ptr<ServedModel>> Find(absl::string_view name) const;
  // The metrics label of `name`: the served name it means, or kUnknownModel.
  std::string Label(absl::string_view name) const;

  // Adds the name (or returns it to) kLoading / kReady with `model` / kFailed with `message`.
  // SetReady returns the model the name held before (null if none): from this call on, every
  // lookup gets the new one.
  void SetLoading(const std::string& name);
  std::shared_ptr<ServedModel> SetReady(const std::string& name,
                                        std::shared_ptr<ServedModel> model);
  void SetFailed(const std::string& name, std::string message);
  // kUnloading: lookups get NotFound; the entry stays listed (with its description) until Remove.
  // Returns the model, which the registry no longer holds (null if the name held none).
  std::shared_ptr<ServedModel> SetUnloading(const std::string& name);
  // Forgets the name; returns the model it held (null if none).
  std::shared_ptr<ServedModel> Remove(const std::string& name);
  // The state of `name` (nullopt: not in the registry).
  std::optional<State> StateOf(absl::string_view name) const;

  // Every entry, in the order they were first added.
  std::vector<Entry> List() const;
  const std::string& default_name() const { return default_name_; }
  // True while something besides the registry holds a served model: a call that was accepted
  // and is not answered yet (each holds its model until then).
  bool AnyModelHeld() const;
  // Removes every entry and returns the models they held (server shutdown).
  std::vector<std::shared_ptr<ServedModel>> TakeAll();

 private:
  Entry* FindEntry(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const Entry* FindEntry(absl::string_view name) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entry of `name`, appended (state kLoading) when there is none.
  Entry& FindOrAddEntry(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ServedNames() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string default_name_;
  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dinov3::registry

#endif  // DINOV3_SERVER_REGISTRY_MODEL_REGISTRY_H_
