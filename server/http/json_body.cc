#include "server/http/json_body.h"

#include "absl/strings/str_cat.h"

namespace dinov3::http {
namespace {

struct TooDeep {};

}  // namespace

absl::StatusOr<nlohmann::json> ParseJsonBody(absl::string_view body, int max_depth) {
  try {
    return nlohmann::json::parse(
        body.begin(), body.end(),
        [max_depth](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
          if (depth > max_depth) throw TooDeep{};
          return true;
        });
  } catch (const TooDeep&) {
    return absl::InvalidArgumentError(absl::StrCat("the JSON body nests deeper than ", max_depth,
                                                   " levels (http.max_json_depth)"));
  } catch (const nlohmann::json::exception& e) {  // a syntax error, a number out of range
    return absl::InvalidArgumentError(absl::StrCat("the body is not valid JSON: ", e.what()));
  }
}

}  // namespace dinov3::http
