#include "server/http/http_router.h"

#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/secret_file.h"

namespace dinov3::http {

int HttpStatusOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

HttpResponse JsonErrorResponse(int status, absl::string_view message) {
  HttpResponse response;
  response.status = status;
  response.body = nlohmann::json{{"error", std::string(message)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);  // odd bytes: U+FFFD
  return response;
}

HttpRouter::HttpRouter(ErrorFormat error_format) : error_format_(std::move(error_format)) {}

void HttpRouter::Add(std::string method, std::string path, HttpHandler handler, bool prefix) {
  routes_.push_back({std::move(method), std::move(path), prefix, std::move(handler)});
}

void HttpRouter::Handle(HttpExchange exchange) const {
  const HttpRequest& request = exchange.request;
  const std::string& method = request.method == "HEAD" ? std::string("GET") : request.method;
  const Route* best = nullptr;
  std::vector<std::string> allowed;
  size_t best_length = 0;
  for (const Route& route : routes_) {
    const bool matches =
        route.prefix ? absl::StartsWith(request.path, route.path) : request.path == route.path;
    if (!matches || route.path.size() < best_length) continue;
    if (route.path.size() > best_length) {  // a longer match: the shorter ones lose
      allowed.clear();
      best = nullptr;
    }
    best_length = route.path.size();
    allowed.push_back(route.method);
    if (route.method == method) best = &route;
  }
  if (best != nullptr) {
    const std::string* encoding = request.Header("content-encoding");
    if (encoding != nullptr && !absl::EqualsIgnoreCase(*encoding, "identity")) {
      HttpResponse response =
          error_format_(415, absl::StrCat("Content-Encoding '", *encoding,
                                          "' is not supported: send the body uncompressed"));
      response.headers.emplace_back("Accept-Encoding", "identity");
      return std::move(exchange.respond)(std::move(response));
    }
    return best->handler(std::move(exchange));
  }
  if (allowed.empty()) {
    return std::move(exchange.respond)(
        error_format_(404, absl::StrCat("no such path: ", request.method, " ", request.path)));
  }
  HttpResponse response =
      error_format_(405, absl::StrCat(request.path, " does not take ", request.method,
                                      "; it takes ", absl::StrJoin(allowed, ", ")));
  response.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
  std::move(exchange.respond)(std::move(response));
}

HttpHandler RequireBearerKey(std::vector<std::string> keys, ErrorFormat error_format,
                             std::function<void()> refused, HttpHandler next) {
  return [keys = std::move(keys), error_format = std::move(error_format),
          refused = std::move(refused), next = std::move(next)](HttpExchange exchange) {
    const std::string* header = exchange.request.Header("authorization");
    const char* refusal = nullptr;
    if (header == nullptr) {
      refusal = "missing 'Authorization: Bearer <key>' header";
    } else if (!absl::StartsWithIgnoreCase(*header, "Bearer ")) {
      refusal = "the Authorization header must be 'Bearer <key>'";
    } else if (!MatchesAnySecret(keys, absl::string_view(*header).substr(7))) {
      refusal = "invalid API key";
    }
    if (refusal == nullptr) return next(std::move(exchange));
    if (refused) refused();
    HttpResponse response = error_format(401, refusal);
    response.headers.emplace_back("WWW-Authenticate", "Bearer");
    std::move(exchange.respond)(std::move(response));
  };
}

HttpHandler OffEventLoop(SubmitJob submit, ErrorFormat error_format, HttpHandler next) {
  if (!submit) return next;
  return [submit = std::move(submit), error_format = std::move(error_format),
          next = std::move(next)](HttpExchange exchange) {
    auto held = std::make_shared<HttpExchange>(std::move(exchange));
    absl::AnyInvocable<void()&&> job = [next, held]() mutable { next(std::move(*held)); };
    if (submit(job)) return;
    std::move(held->respond)(error_format(
        503,
        "the server cannot take this request now (its request queue is full or stopping); "
        "retry"));
  };
}

HttpHandler RequireBasicAuth(const std::vector<std::string>& user_passwords, std::string realm,
                             HttpHandler next) {
  std::vector<std::string> accepted;
  for (const std::string& pair : user_passwords) {
    accepted.push_back(absl::StrCat("Basic ", absl::Base64Escape(pair)));
  }
  return [accepted = std::move(accepted), realm = std::move(realm),
          next = std::move(next)](HttpExchange exchange) {
    const std::string* header = exchange.request.Header("authorization");
    if (header != nullptr && MatchesAnySecret(accepted, *header)) return next(std::move(exchange));
    HttpResponse response;
    response.status = 401;
    response.content_type = "text/plain; charset=utf-8";
    response.body = "authentication required\n";
    response.headers.emplace_back("WWW-Authenticate", absl::StrCat("Basic realm=\"", realm, "\""));
    std::move(exchange.respond)(std::move(response));
  };
}

}  // namespace dinov3::http
