#include "config/field_checks.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "config/config.h"

namespace dinov3::config::internal {
namespace {

bool AllDigits(absl::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), absl::ascii_isdigit);
}

bool IsDevice(absl::string_view device) {
  if (device == "cpu" || device == "cuda") return true;
  return absl::ConsumePrefix(&device, "cuda:") && AllDigits(device) && device.size() <= 3;
}

bool IsHostPort(absl::string_view address) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) return false;
  const absl::string_view port = address.substr(colon + 1);
  int number = 0;
  return AllDigits(port) && port.size() <= 5 && absl::SimpleAtoi(port, &number) && number <= 65535;
}

}  // namespace

absl::Status Check(absl::string_view key, int64_t value, const IntRange& range) {
  if (value >= range.min && value <= range.max) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(key, " must be between ", range.min, " and ", range.max, ", got ", value));
}

absl::Status Check(absl::string_view key, double value, const DoubleRange& range) {
  if (std::isfinite(value) && value >= range.min && value <= range.max) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(key, " must be between ", range.min, " and ", range.max, ", got ", value));
}

absl::Status Check(absl::string_view key, const std::vector<int>& value, const IntListUpTo& range) {
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] >= range.min && value[i] <= range.max) continue;
    return absl::InvalidArgumentError(absl::StrCat(key, "[", i, "] must be between ", range.min,
                                                   " and ", range.max_key, " (", range.max,
                                                   "), got ", value[i]));
  }
  return absl::OkStatus();
}

absl::Status Check(absl::string_view key, const std::string& value, const OneOf& one_of) {
  if (std::find(one_of.values.begin(), one_of.values.end(), value) != one_of.values.end()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      key, " must be one of ", absl::StrJoin(one_of.values, ", "), "; got '", value, "'"));
}

absl::Status Check(absl::string_view key, const std::string& value, const Address& address) {
  if (IsHostPort(value)) return absl::OkStatus();
  if (address.allow_unix && absl::StartsWith(value, "unix:") && value.size() > 5) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(key, " must be ", Describe(address), ", got '", value, "'"));
}

absl::Status Check(absl::string_view key, const std::vector<std::string>& value,
                   const DeviceList&) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(key, " must name at least one device"));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (!IsDevice(value[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, "[", i, "] must be cpu, cuda or cuda:N, got '", value[i], "'"));
    }
    // "cuda" is "cuda:0" (the server loads both on the same GPU).
    const auto same_device = [&](const std::string& other) {
      const auto canonical = [](const std::string& d) { return d == "cuda" ? "cuda:0" : d; };
      return canonical(other) == canonical(value[i]);
    };
    if (std::any_of(value.begin(), value.begin() + i, same_device)) {
      return absl::InvalidArgumentError(
          absl::StrCat(key, "[", i, "] repeats '", value[i],
                       "' (use model.instances_per_device for more instances)"));
    }
  }
  return absl::OkStatus();
}

absl::Status Check(absl::string_view key, const std::string& value, const Required& required) {
  if (!value.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(key, " is required (", required.hint, ")"));
}

absl::Status Check(absl::string_view key, const std::string& value, const ModelName& name) {
  if ((value.empty() && name.allow_empty) || IsValidModelName(value)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      key, " must be 1 to 64 letters, digits, '-', '_' or '.' (not . or ..), got '", value, "'"));
}

std::string Describe(const IntRange& range) { return absl::StrCat(range.min, "..", range.max); }
std::string Describe(const DoubleRange& range) { return absl::StrCat(range.min, "..", range.max); }
std::string Describe(const IntListUpTo& range) {
  return absl::StrCat("each ", range.min, "..", range.max_key);
}
std::string Describe(const OneOf& one_of) { return absl::StrJoin(one_of.values, ", "); }
std::string Describe(const Address& address) {
  return address.allow_unix ? "HOST:PORT with PORT 0..65535 or unix:PATH"
                            : "HOST:PORT with PORT 0..65535";
}
std::string Describe(const DeviceList&) { return "cpu, cuda or cuda:N, no repeats"; }
std::string Describe(const Required&) { return ""; }
std::string Describe(const ModelName&) { return "letters, digits, -, _, . (1 to 64)"; }
std::string Describe(const AnyValue&) { return ""; }

}  // namespace dinov3::config::internal
