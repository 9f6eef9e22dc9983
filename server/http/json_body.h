// Parsing a JSON request body with a bound on its nesting, for the HTTP front doors: a body
// nested deeper than `max_depth` (arrays and objects; http.max_json_depth) is refused while it
// is parsed, before its values are built, so a hostile body cannot exhaust the stack or the
// memory of the tree.
// Also the size a JSON answer of numbers holds per number, for the front doors' memory
// footprint (AnswerSize, server/pipeline/embed_job.h).
// Errors: InvalidArgument, "the body is not valid JSON: <where and why>" or "the JSON body nests
// deeper than N levels (http.max_json_depth)". Thread-safe: a plain function.
#ifndef DINOV3_SERVER_HTTP_JSON_BODY_H_
#define DINOV3_SERVER_HTTP_JSON_BODY_H_

#include <cstdint>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dinov3::http {

// The most one number of a JSON array answer holds while it is built: its value in the tree
// (an nlohmann::json, 16 bytes; the array reserved to its size) and its longest text (a float
// as the shortest double that round-trips it, "-1.2345678901234567e-05", and a comma: 24).
inline constexpr int64_t kJsonNumberBytes = 16 + 24;

absl::StatusOr<nlohmann::json> ParseJsonBody(absl::string_view body, int max_depth);

}  // namespace dinov3::http

#endif  // DINOV3_SERVER_HTTP_JSON_BODY_H_
