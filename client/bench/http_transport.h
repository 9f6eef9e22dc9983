// Transport for the HTTP peer (LitServe, tests/bench/peers): each call POSTs one JSON body to
// `path` over HTTP/1.1 with keep-alive, one connection per worker, and reads the whole answer.
// A call's error is "HTTP_<status>" for an answer other than 200, "CONNECTION" when the
// exchange breaks or times out (the connection is then reopened by the next call).
// Plain TCP only; the body must carry no secrets.
#ifndef DINOV3_CLIENT_BENCH_HTTP_TRANSPORT_H_
#define DINOV3_CLIENT_BENCH_HTTP_TRANSPORT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/bench/transport.h"

namespace dinov3::bench {

struct HttpTarget {
  std::string address;  // host:port (IPv4 or a name; [v6]:port)
  std::string path = "/predict";
  double timeout_seconds = 120;  // per exchange
};

// Calls cycle through `bodies`.
std::unique_ptr<Transport> MakeHttpTransport(const HttpTarget& target,
                                             std::vector<std::string> bodies);

// The status code and Content-Length of an HTTP/1.1 response head (up to and including the
// blank line); InvalidArgument for anything else. Exposed for tests.
struct ResponseHead {
  int status = 0;
  size_t content_length = 0;
  bool close = false;  // "Connection: close"
};
absl::StatusOr<ResponseHead> ParseResponseHead(const std::string& head);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_HTTP_TRANSPORT_H_
