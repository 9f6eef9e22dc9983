// Internal to dinov3_config: checks a field value against its constraint (config_fields.h)
// and describes the constraint for the documentation comments of ToYaml().
// Check returns OK or InvalidArgument naming the key, the allowed values and the bad value,
// e.g. "batching.max_batch_size must be between 1 and 1024, got 0".
#ifndef DINOV3_CONFIG_FIELD_CHECKS_H_
#define DINOV3_CONFIG_FIELD_CHECKS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "config/config_fields.h"

namespace dinov3::config::internal {

absl::Status Check(absl::string_view key, int64_t value, const IntRange& range);
absl::Status Check(absl::string_view key, double value, const DoubleRange& range);
absl::Status Check(absl::string_view key, const std::vector<int>& value, const IntListUpTo& range);
absl::Status Check(absl::string_view key, const std::string& value, const OneOf& one_of);
absl::Status Check(absl::string_view key, const std::string& value, const Address& address);
absl::Status Check(absl::string_view key, const std::vector<std::string>& value, const DeviceList&);
absl::Status Check(absl::string_view key, const std::string& value, const Required& required);
absl::Status Check(absl::string_view key, const std::string& value, const ModelName& name);
template <typename T>
absl::Status Check(absl::string_view, const T&, const AnyValue&) {
  return absl::OkStatus();
}

// "1..1024", "one of: text, json", ... ; "" when there is nothing to add to the help text.
std::string Describe(const IntRange& range);
std::string Describe(const DoubleRange& range);
std::string Describe(const IntListUpTo& range);
std::string Describe(const OneOf& one_of);
std::string Describe(const Address& address);
std::string Describe(const DeviceList&);
std::string Describe(const Required&);
std::string Describe(const ModelName&);
std::string Describe(const AnyValue&);

}  // namespace dinov3::config::internal

#endif  // DINOV3_CONFIG_FIELD_CHECKS_H_
