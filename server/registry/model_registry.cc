#include "server/registry/model_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dinov3::registry {

ModelRegistry::Entry* ModelRegistry::FindEntry(absl::string_view name) {
  for (Entry& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

ModelRegistry::Entry& ModelRegistry::FindOrAddEntry(const std::string& name) {
  if (Entry* entry = FindEntry(name)) return *entry;
  Entry& added = entries_.emplace_back();
  added.name = name;
  return added;
}

const ModelRegistry::Entry* ModelRegistry::FindEntry(absl::string_view name) const {
  for (const Entry& entry : entries_) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

std::string ModelRegistry::ServedNames() const {
  std::vector<std::string> names;
  for (const Entry& entry : entries_) {
    if (entry.state == State::kReady) names.push_back(entry.name);
  }
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

absl::StatusOr<std::shared_ptr<ServedModel>> ModelRegistry::Find(absl::string_view name) const {
  const absl::string_view wanted = name.empty() ? absl::string_view(default_name_) : name;
  absl::MutexLock lock(&mu_);
  const Entry* entry = FindEntry(wanted);
  if (entry != nullptr && entry->state == State::kReady) return entry->model;
  if (entry != nullptr && entry->state == State::kLoading) {
    return absl::UnavailableError(
        absl::StrCat("model '", wanted, "' is still loading; retry shortly"));
  }
  // A request's name is echoed only when it is short and printable.
  const bool printable =
      wanted.size() <= 64 &&
      std::all_of(wanted.begin(), wanted.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  const std::string shown = printable ? absl::StrCat("'", wanted, "'") : "(a name of odd bytes)";
  const std::string why = entry == nullptr                    ? ""
                          : entry->state == State::kUnloading ? " (it is being unloaded)"
                                                              : " (its load failed)";
  return absl::NotFoundError(
      absl::StrCat("model: no model ", shown, " is served", why, "; served: ", ServedNames()));
}

std::string ModelRegistry::Label(absl::string_view name) const {
  if (name.empty()) return default_name_;
  absl::MutexLock lock(&mu_);
  const Entry* entry = FindEntry(name);
  return entry == nullptr ? metrics::kUnknownModel : entry->name;
}

void ModelRegistry::SetLoading(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Entry* entry = &FindOrAddEntry(name);
  entry->state = State::kLoading;
  entry->message.clear();
}

std::shared_ptr<ServedModel> ModelRegistry::SetReady(const std::string& name,
                                                     std::shared_ptr<ServedModel> model) {
  absl::MutexLock lock(&mu_);
  Entry* entry = &FindOrAddEntry(name);
  entry->state = State::kReady;
  entry->message.clear();
  entry->description =
      model != nullptr ? std::optional<ModelDescription>(model->description()) : std::nullopt;
  std::swap(entry->model, model);
  return model;
}

std::shared_ptr<ServedModel> ModelRegistry::SetUnloading(const std::string& name) {
  absl::MutexLock lock(&mu_);
  Entry* entry = FindEntry(name);
  if (entry == nullptr) return nullptr;
  entry->state = State::kUnloading;
  return std::move(entry->model);
}

std::shared_ptr<ServedModel> ModelRegistry::Remove(const std::string& name) {
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->name != name) continue;
    std::shared_ptr<ServedModel> model = std::move(it->model);
    entries_.erase(it);
    return model;
  }
  return nullptr;
}

std::optional<ModelRegistry::State> ModelRegistry::StateOf(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  const Entry* entry = FindEntry(name);
  if (entry == nullptr) return std::nullopt;
  return entry->state;
}

void ModelRegistry::SetFailed(const std::string& name, std::string message) {
  absl::MutexLock lock(&mu_);
  Entry* entry = &FindOrAddEntry(name);
  entry->state = State::kFailed;
  entry->message = std::move(message);
  entry->model.reset();
  entry->description.reset();
}

std::vector<ModelRegistry::Entry> ModelRegistry::List() const {
  absl::MutexLock lock(&mu_);
  return entries_;
}

bool ModelRegistry::AnyModelHeld() const {
  absl::MutexLock lock(&mu_);
  for (const Entry& entry : entries_) {
    if (entry.model != nullptr && entry.model.use_count() > 1) return true;
  }
  return false;
}

std::vector<std::shared_ptr<ServedModel>> ModelRegistry::TakeAll() {
  absl::MutexLock lock(&mu_);
  std::vector<std::shared_ptr<ServedModel>> models;
  for (Entry& entry : entries_) {
    if (entry.model != nullptr) models.push_back(std::move(entry.model));
  }
  entries_.clear();
  return models;
}

}  // namespace dinov3::registry
