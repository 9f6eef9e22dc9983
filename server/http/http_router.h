// Routing and access checks for HttpServer (http_server.h), free of any HTTP library.
//
// HttpRouter: routes by method and path. A route's path is exact ("/v1/embeddings") or, with
// `prefix`, matches every path that starts with it ("/v2/models/"); the longest match wins. HEAD
// is routed as GET (the server sends no body). A path no route matches → 404; a matched path
// without a route for the method → 405 with an Allow header. A routed request whose body has a
// Content-Encoding other than identity (gzip, ...) → 415 with "Accept-Encoding: identity": no
// handler decompresses, so a compressed body is refused by name instead of failing as bad JSON
// or a bad image. Errors are written by the router's
// ErrorFormat, so each front door keeps its protocol's error shape.
// Build it before the server starts; Handle is then const and thread-safe.
//
// RequireBearerKey / RequireBasicAuth wrap a handler: the request needs "Authorization: Bearer
// <one of keys>" (the scheme in any case; 401 otherwise) / "Authorization: Basic <base64 of one
// of user:password>" (401 with WWW-Authenticate). Secrets are compared in constant time
// (server/common/secret_file.h).
//
// OffEventLoop wraps a handler that parses a large body (JSON): it runs on a job queued through
// `submit` instead of on the server's event-loop thread, so one request's parse never stalls
// the other connections.
#ifndef DINOV3_SERVER_HTTP_HTTP_ROUTER_H_
#define DINOV3_SERVER_HTTP_HTTP_ROUTER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/http/http_exchange.h"

namespace dinov3::http {

// The body and type of an error answer with `status`, in a front door's shape.
using ErrorFormat = std::function<HttpResponse(int status, absl::string_view message)>;

// The HTTP status for a status of the pipeline (absl::StatusCode): 400 invalid argument, failed
// precondition and out of range, 401 unauthenticated, 403 permission denied, 404 not found, 429
// resource exhausted, 499 cancelled, 501 unimplemented, 503 unavailable, 504 deadline exceeded,
// otherwise 500.
int HttpStatusOf(absl::StatusCode code);

// {"error": "<message>"}: the Open Inference Protocol's error shape, also the router's default.
HttpResponse JsonErrorResponse(int status, absl::string_view message);

// Queues `job` on some other thread and returns true, or returns false and leaves `job` as it
// was (e.g. pipeline::ThreadPool::TrySubmit).
using SubmitJob = std::function<bool(absl::AnyInvocable<void() &&>& job)>;

class HttpRouter {
 public:
  explicit HttpRouter(ErrorFormat error_format = JsonErrorResponse);

  void Add(std::string method, std::string path, HttpHandler handler, bool prefix = false);
  void Handle(HttpExchange exchange) const;

 private:
  struct Route {
    std::string method;
    std::string path;
    bool prefix;
    HttpHandler handler;
  };
  ErrorFormat error_format_;
  std::vector<Route> routes_;
};

// `refused` is called for each refused request (for metrics); may be empty.
HttpHandler RequireBearerKey(std::vector<std::string> keys, ErrorFormat error_format,
                             std::function<void()> refused, HttpHandler next);
// `user_passwords`: "user:password" lines.
// `next` runs in a job given to `submit`; when `submit` refuses it (full or stopping), the
// request is answered 503 in `error_format` and `next` never sees it. An empty `submit` runs
// `next` at once, on the calling thread.
HttpHandler OffEventLoop(SubmitJob submit, ErrorFormat error_format, HttpHandler next);

HttpHandler RequireBasicAuth(const std::vector<std::string>& user_passwords, std::string realm,
                             HttpHandler next);

}  // namespace dinov3::http

#endif  // DINOV3_SERVER_HTTP_HTTP_ROUTER_H_
