// Internal to dinov3_config: converts a field between its C++ type and its text forms.
//   ParseText  - environment variables and command-line flags; lists are comma-separated.
//   ParseYaml  - a node of the config file (lists are YAML sequences).
//   FormatText - the Summary() form (lists comma-separated; strings quoted only when empty or
//                holding blanks, quotes, = or backslashes).
//   FormatYaml - a YAML flow value that ParseYaml reads back to the same value.
// Errors are InvalidArgument naming `key` and the expected type, e.g.
//   "batching.max_batch_size must be an integer, got 'abc'".
// The caller adds where the text came from (file and line, variable, flag).
#ifndef DINOV3_CONFIG_FIELD_VALUES_H_
#define DINOV3_CONFIG_FIELD_VALUES_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace dinov3::config::internal {

absl::Status ParseText(absl::string_view key, absl::string_view text, int& out);
absl::Status ParseText(absl::string_view key, absl::string_view text, int64_t& out);
absl::Status ParseText(absl::string_view key, absl::string_view text, double& out);
absl::Status ParseText(absl::string_view key, absl::string_view text, bool& out);
absl::Status ParseText(absl::string_view key, absl::string_view text, std::string& out);
absl::Status ParseText(absl::string_view key, absl::string_view text,
                       std::vector<std::string>& out);
absl::Status ParseText(absl::string_view key, absl::string_view text, std::vector<int>& out);

// Scalars must be YAML scalars, lists YAML sequences of scalars; null is a type error.
template <typename T>
absl::Status ParseYaml(absl::string_view key, const YAML::Node& node, T& out);

std::string FormatText(int value);
std::string FormatText(int64_t value);
std::string FormatText(double value);
std::string FormatText(bool value);
std::string FormatText(const std::string& value);
std::string FormatText(const std::vector<std::string>& value);
std::string FormatText(const std::vector<int>& value);

template <typename T>
std::string FormatYaml(const T& value);

}  // namespace dinov3::config::internal

#endif  // DINOV3_CONFIG_FIELD_VALUES_H_
