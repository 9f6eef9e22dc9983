// Process-wide log setup (spdlog) and the per-RPC access log.
//
// ConfigureLogging installs two loggers writing to stderr, both filtered by `level`: the default
// logger (everything the server says) and "access": one line per finished RPC, written at
// access_log_level (off = none), except rejections and failures (any code but OK and
// CANCELLED), which are written at warn with their reason. format "text": `2026-11-27 12:00:00.123
// [info] message`; format "json": one JSON object per line with time (UTC, RFC 3339), level, logger
// and msg; access lines carry their fields as separate JSON keys. Never log image bytes or secrets.
// Call ConfigureLogging once, before other threads log; LogAccess is thread-safe.
#ifndef DINOV3_SERVER_COMMON_LOGGING_H_
#define DINOV3_SERVER_COMMON_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace dinov3::logging {

struct LogOptions {
  std::string level = "info";             // trace, debug, info, warn, error, critical, off
  std::string format = "text";            // text or json
  std::string access_log_level = "info";  // level of OK/CANCELLED access lines (off = none)
};

// InvalidArgument naming the bad field and the allowed values.
absl::Status ConfigureLogging(const LogOptions& options);

// One finished RPC.
struct AccessRecord {
  std::string_view method = {};  // "Embed", "StreamEmbed", ...
  std::string_view model = {};   // the served model's name (metrics label), "" before any
  std::string_view code = {};    // gRPC status code name, e.g. "OK", "INVALID_ARGUMENT"
  int images = 0;
  double seconds = 0;                // server-side latency
  std::string_view peer = {};        // e.g. "ipv4:127.0.0.1:50432"
  std::string_view request_id = {};  // the client's, may be empty
  std::string_view reason = {};      // rejection reason (metrics label), empty when OK
  std::string_view error = {};       // the status message, empty when OK
};

void LogAccess(const AccessRecord& record);

}  // namespace dinov3::logging

#endif  // DINOV3_SERVER_COMMON_LOGGING_H_
