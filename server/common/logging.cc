#include "server/common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dinov3::logging {
namespace {

constexpr size_t kMaxFieldLength = 128;  // client-supplied strings are cut to this in logs

std::atomic<bool> json_format{false};
std::atomic<int> access_line_level{spdlog::level::info};
std::atomic<std::shared_ptr<spdlog::logger>> access_logger_in_use;  // set by ConfigureLogging

// The length (1-4) of the well-formed UTF-8 sequence `text` starts with, or 0 when it starts
// with none (a stray or truncated byte, an overlong form, a surrogate, above U+10FFFF).
size_t Utf8SequenceLength(std::string_view text) {
  const auto byte = [&text](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length = 0;
  uint32_t code = 0;
  uint32_t smallest = 0;
  if ((lead & 0xE0) == 0xC0) {
    length = 2, code = lead & 0x1F, smallest = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3, code = lead & 0x0F, smallest = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4, code = lead & 0x07, smallest = 0x10000;
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3F);
  }
  if (code < smallest || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return 0;
  return length;
}

// Appends `text` as a JSON string (quoted, escaped, control characters as \u00XX). Bytes that
// are not well-formed UTF-8 (client strings may hold any) become U+FFFD, so every line is valid
// UTF-8 and, in the json format, valid JSON.
void AppendJsonString(std::string_view text, std::string& out) {
  out.push_back('"');
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t length = Utf8SequenceLength(text.substr(i));
      if (length == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(text.substr(i, length));
        i += length;
      }
      continue;
    }
    ++i;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

std::string Utc(spdlog::log_clock::time_point time) {
  const auto since_epoch = time.time_since_epoch();
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count() % 1000000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
}

// {"time":...,"level":...,"logger":...,"msg":...}. With `fields_in_payload`, the payload is
// already a list of JSON members (the access logger's) and is spliced in as they are.
class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(bool fields_in_payload) : fields_in_payload_(fields_in_payload) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    std::string line = "{\"time\":\"" + Utc(msg.time) + "\",\"level\":";
    const auto level = spdlog::level::to_string_view(msg.level);
    AppendJsonString(std::string_view(level.data(), level.size()), line);
    line += ",\"logger\":";
    AppendJsonString(msg.logger_name.size()
                         ? std::string_view(msg.logger_name.data(), msg.logger_name.size())
                         : "server",
                     line);
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (fields_in_payload_) {
      line += ",";
      line += payload;
    } else {
      line += ",\"msg\":";
      AppendJsonString(payload, line);
    }
    line += "}\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(fields_in_payload_);
  }

 private:
  const bool fields_in_payload_;
};

absl::Status ParseLevel(const std::string& name, const char* field,
                        spdlog::level::level_enum* out) {
  // Our names; spdlog itself spells warn "warning".
  static constexpr std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}};
  for (const auto& [level_name, level] : kLevels) {
    if (name == level_name) {
      *out = level;
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      field, " must be one of trace, debug, info, warn, error, critical, off; got '", name, "'"));
}

// At most `limit` bytes of `text`, never ending inside a UTF-8 sequence.
std::string Cut(std::string_view text, size_t limit = kMaxFieldLength) {
  if (text.size() <= limit) return std::string(text);
  size_t end = limit;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

}  // namespace

absl::Status ConfigureLogging(const LogOptions& options) {
  spdlog::level::level_enum level, access_level;
  if (absl::Status s = ParseLevel(options.level, "logging.level", &level); !s.ok()) return s;
  if (absl::Status s =
          ParseLevel(options.access_log_level, "logging.access_log_level", &access_level);
      !s.ok()) {
    return s;
  }
  if (options.format != "text" && options.format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("logging.format must be one of text, json; got '", options.format, "'"));
  }
  const bool json = options.format == "json";
  json_format.store(json);
  access_line_level.store(access_level);

  auto server_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto access_sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  if (json) {
    server_sink->set_formatter(std::make_unique<JsonFormatter>(false));
    access_sink->set_formatter(std::make_unique<JsonFormatter>(true));
  } else {
    server_sink->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] %v");
    access_sink->set_pattern("%Y-%m-%d %H:%M:%S.%e [%l] [access] %v");
  }
  auto server_logger = std::make_shared<spdlog::logger>("", server_sink);
  server_logger->set_level(level);
  spdlog::set_default_logger(server_logger);

  spdlog::drop("access");
  auto access_logger = std::make_shared<spdlog::logger>("access", access_sink);
  access_logger->set_level(level);
  spdlog::register_logger(access_logger);
  access_logger_in_use.store(access_logger);
  return absl::OkStatus();
}

void LogAccess(const AccessRecord& r) {
  std::shared_ptr<spdlog::logger> logger = access_logger_in_use.load();
  if (logger == nullptr) logger = spdlog::default_logger();
  // Rejections and failures are warnings whatever the access level; client cancellations are not.
  const bool rejected = r.code != "OK" && r.code != "CANCELLED";
  const auto level = rejected ? spdlog::level::warn
                              : static_cast<spdlog::level::level_enum>(access_line_level.load());
  if (level == spdlog::level::off || !logger->should_log(level)) return;
  const bool json = json_format.load() && logger->name() == "access";
  // text: `rpc method="Embed" code="OK" images=1 ...`; json: "msg":"rpc","method":"Embed",...
  std::string line = json ? "\"msg\":\"rpc\"" : "rpc";
  const auto key = [&](std::string_view name) {
    line += json ? ",\"" : " ";
    line += name;
    line += json ? "\":" : "=";
  };
  const auto field = [&](std::string_view name, std::string_view value) {
    key(name);
    AppendJsonString(value, line);
  };
  const auto number = [&](std::string_view name, const std::string& value) {
    key(name);
    line += value;
  };
  field("method", r.method);
  field("model", r.model);
  field("code", r.code);
  number("images", absl::StrCat(r.images));
  number("seconds", absl::StrFormat("%.6f", r.seconds));
  field("peer", Cut(r.peer));
  field("request_id", Cut(r.request_id));
  if (!r.reason.empty()) field("reason", r.reason);
  if (!r.error.empty()) field("error", Cut(r.error, 2 * kMaxFieldLength));
  logger->log(level, "{}", line);
}

}  // namespace dinov3::logging
