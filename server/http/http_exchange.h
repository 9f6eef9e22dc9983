// One HTTP request and its answer, as the front doors see them: plain values with no HTTP
// library types, so handlers compile without Boost and can be unit-tested without sockets.
//
// HttpExchange: the request, a cancellation check (true once the client hung up or the server
// closed the connection) and `respond`, which must be called exactly once, from any thread;
// calling it after the connection is gone is harmless (the answer is dropped).
#ifndef DINOV3_SERVER_HTTP_HTTP_EXCHANGE_H_
#define DINOV3_SERVER_HTTP_HTTP_EXCHANGE_H_

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace dinov3::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ... as sent
  std::string path;    // the target without its query, e.g. "/v1/embeddings"
  std::string query;   // after '?', without it; "" if none
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  std::string peer;                            // "ipv4:127.0.0.1:5555", as gRPC writes peers
  absl::Time received = absl::InfinitePast();  // when the whole request had arrived

  // The first header named `name` (lower case), or nullptr.
  const std::string* Header(absl::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) return &value;
    }
    return nullptr;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
};

using HttpRespond = absl::AnyInvocable<void(HttpResponse) &&>;

struct HttpExchange {
  HttpRequest request;
  std::function<bool()> is_cancelled;  // thread-safe, cheap
  HttpRespond respond;
};

using HttpHandler = std::function<void(HttpExchange)>;

}  // namespace dinov3::http

#endif  // DINOV3_SERVER_HTTP_HTTP_EXCHANGE_H_
