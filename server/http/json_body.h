// Parsing a JSON request body with a bound on its nesting, for the HTTP front doors: a body
// nested deeper than `max_depth` (arrays and objects; http.max_json_depth) is refused while it
// is parsed, before its values are built, so a hostile body cannot exhaust the stack or the
// memory of the tree.
// Errors: InvalidArgument, "the body is not valid JSON: <where and why>" or "the JSON body nests
// deeper than N levels (http.max_json_depth)". Thread-safe: a plain function.
#ifndef DINOV3_SERVER_HTTP_JSON_BODY_H_
#define DINOV3_SERVER_HTTP_JSON_BODY_H_

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dinov3::http {

absl::StatusOr<nlohmann::json> ParseJsonBody(absl::string_view body, int max_depth);

}  // namespace dinov3::http

#endif  // DINOV3_SERVER_HTTP_JSON_BODY_H_
