#include "config/field_values.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace dinov3::config::internal {
namespace {

template <typename T>
constexpr absl::string_view TypeName() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of strings";
  if constexpr (std::is_same_v<T, std::vector<int>>) return "a list of integers";
}

absl::Status TypeError(absl::string_view key, absl::string_view type, absl::string_view got) {
  return absl::InvalidArgumentError(absl::StrCat(key, " must be ", type, ", got ", got));
}

std::string Quoted(absl::string_view text) { return absl::StrCat("'", text, "'"); }

std::string DescribeNode(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "no value";
  }
}

std::vector<absl::string_view> SplitList(absl::string_view text) {
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    parts.push_back(absl::StripAsciiWhitespace(part));
  }
  return parts;
}

template <typename T>
absl::Status ParseList(absl::string_view key, absl::string_view text, std::vector<T>& out) {
  std::vector<T> values;
  for (absl::string_view part : SplitList(text)) {
    T value{};
    if (!ParseText(key, part, value).ok()) {
      return TypeError(key,
                       absl::StrCat("a comma-separated ", TypeName<std::vector<T>>().substr(2)),
                       Quoted(text));
    }
    values.push_back(std::move(value));
  }
  out = std::move(values);
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseText(absl::string_view key, absl::string_view text, int64_t& out) {
  text = absl::StripAsciiWhitespace(text);
  if (absl::SimpleAtoi(text, &out)) return absl::OkStatus();
  absl::string_view digits = text;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
  if (!digits.empty() && std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
    return absl::InvalidArgumentError(absl::StrCat(key, " is out of range, got ", text));
  }
  return TypeError(key, TypeName<int64_t>(), Quoted(text));
}

absl::Status ParseText(absl::string_view key, absl::string_view text, int& out) {
  int64_t wide = 0;
  if (absl::Status s = ParseText(key, text, wide); !s.ok()) return s;
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(key, " is out of range, got ", wide));
  }
  out = static_cast<int>(wide);
  return absl::OkStatus();
}

absl::Status ParseText(absl::string_view key, absl::string_view text, double& out) {
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(text), &out)) {
    return TypeError(key, TypeName<double>(), Quoted(text));
  }
  return absl::OkStatus();
}

absl::Status ParseText(absl::string_view key, absl::string_view text, bool& out) {
  if (!absl::SimpleAtob(absl::StripAsciiWhitespace(text), &out)) {
    return TypeError(key, TypeName<bool>(), Quoted(text));
  }
  return absl::OkStatus();
}

absl::Status ParseText(absl::string_view, absl::string_view text, std::string& out) {
  out = std::string(text);
  return absl::OkStatus();
}

absl::Status ParseText(absl::string_view key, absl::string_view text,
                       std::vector<std::string>& out) {
  return ParseList(key, text, out);
}

absl::Status ParseText(absl::string_view key, absl::string_view text, std::vector<int>& out) {
  return ParseList(key, text, out);
}

template <typename T>
absl::Status ParseYaml(absl::string_view key, const YAML::Node& node, T& out) {
  if constexpr (std::is_same_v<T, std::vector<std::string>> ||
                std::is_same_v<T, std::vector<int>>) {
    if (!node.IsSequence()) return TypeError(key, TypeName<T>(), DescribeNode(node));
    T values;
    for (size_t i = 0; i < node.size(); ++i) {
      const std::string element = absl::StrCat(key, "[", i, "]");
      typename T::value_type value{};
      if (!node[i].IsScalar()) {
        return TypeError(element, TypeName<typename T::value_type>(), DescribeNode(node[i]));
      }
      if (absl::Status s = ParseText(element, node[i].Scalar(), value); !s.ok()) return s;
      values.push_back(std::move(value));
    }
    out = std::move(values);
    return absl::OkStatus();
  } else {
    if (!node.IsScalar()) return TypeError(key, TypeName<T>(), DescribeNode(node));
    return ParseText(key, node.Scalar(), out);
  }
}

template absl::Status ParseYaml(absl::string_view, const YAML::Node&, int&);
template absl::Status ParseYaml(absl::string_view, const YAML::Node&, int64_t&);
template absl::Status ParseYaml(absl::string_view, const YAML::Node&, double&);
template absl::Status ParseYaml(absl::string_view, const YAML::Node&, bool&);
template absl::Status ParseYaml(absl::string_view, const YAML::Node&, std::string&);
template absl::Status ParseYaml(absl::string_view, const YAML::Node&, std::vector<std::string>&);
template absl::Status ParseYaml(absl::string_view, const YAML::Node&, std::vector<int>&);

std::string FormatText(int value) { return absl::StrCat(value); }
std::string FormatText(int64_t value) { return absl::StrCat(value); }
std::string FormatText(bool value) { return value ? "true" : "false"; }
std::string FormatText(const std::string& value) {
  if (!value.empty() && value.find_first_of(" \t\"'=\\") == std::string::npos) return value;
  return absl::StrCat("\"", absl::CEscape(value), "\"");
}
std::string FormatText(const std::vector<std::string>& value) { return absl::StrJoin(value, ","); }
std::string FormatText(const std::vector<int>& value) { return absl::StrJoin(value, ","); }

std::string FormatText(double value) {
  // Shortest text that reads back to the same double; integral values keep a ".0".
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, ec == std::errc() ? end : buffer);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

namespace {

// Strings that a YAML reader could take for another type (or that are empty) are quoted.
bool NeedsQuotes(const std::string& value) {
  double d;
  bool b;
  return value.empty() || absl::SimpleAtod(value, &d) || absl::SimpleAtob(value, &b) ||
         value == "null" || value == "Null" || value == "NULL" || value == "~";
}

void Emit(YAML::Emitter& out, const std::string& value) {
  if (NeedsQuotes(value)) out << YAML::DoubleQuoted;
  out << value;
}

}  // namespace

template <typename T>
std::string FormatYaml(const T& value) {
  if constexpr (std::is_same_v<T, std::string>) {
    YAML::Emitter out;
    Emit(out, value);
    return out.c_str();
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    YAML::Emitter out;
    out << YAML::Flow << YAML::BeginSeq;
    for (const std::string& element : value) Emit(out, element);
    out << YAML::EndSeq;
    return out.c_str();
  } else if constexpr (std::is_same_v<T, std::vector<int>>) {
    return absl::StrCat("[", absl::StrJoin(value, ", "), "]");
  } else {
    return FormatText(value);
  }
}

template std::string FormatYaml(const int&);
template std::string FormatYaml(const int64_t&);
template std::string FormatYaml(const double&);
template std::string FormatYaml(const bool&);
template std::string FormatYaml(const std::string&);
template std::string FormatYaml(const std::vector<std::string>&);
template std::string FormatYaml(const std::vector<int>&);

}  // namespace dinov3::config::internal
