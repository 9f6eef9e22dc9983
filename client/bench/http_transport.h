// HTTP/1.1 transport of the load generator, shared by the HTTP front doors it drives: the
// LitServe peer (tests/bench/peers, POST /predict with a JSON body), the Open Inference
// Protocol's REST binary extension (oip_rest_transport.h) and OpenAI's /v1/embeddings
// (openai_transport.h). Each call sends the next prepared request (built once, up front) over
// HTTP/1.1 with keep-alive, one connection per worker, and reads the whole answer.
// A call's error is "HTTP_<status>" for an answer other than 200, "CONNECTION" when the
// exchange breaks or times out (the connection is then reopened by the next call), or what the
// request set's answer check says of a 200 answer (e.g. "BAD_RESPONSE").
// Plain TCP only; the body must carry no secrets.
#ifndef DINOV3_CLIENT_BENCH_HTTP_TRANSPORT_H_
#define DINOV3_CLIENT_BENCH_HTTP_TRANSPORT_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/bench/transport.h"

namespace dinov3::bench {

struct HttpTarget {
  std::string address;  // host:port (IPv4 or a name; [v6]:port)
  std::string path = "/predict";  // MakeHttpTransport's (prepared requests carry their own)
  double timeout_seconds = 120;  // per exchange
};

// The status code, Content-Length and header fields of an HTTP/1.1 response head (up to and
// including the blank line); InvalidArgument for anything else. Exposed for tests.
struct ResponseHead {
  int status = 0;
  size_t content_length = 0;
  bool close = false;  // "Connection: close"
  std::map<std::string, std::string> headers = {};  // lower-case name -> value (the last one)
};
absl::StatusOr<ResponseHead> ParseResponseHead(const std::string& head);

// One prepared POST.
struct HttpRequest {
  std::string path = "";
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers = {};  // extra header fields
  std::string body = "";
  int images = 1;  // images the body carries (CallResult::images)
};

// Checks a 200 answer's complete body; "" when it is what the request asked for, otherwise the
// call's error. `request` is the one sent, without its body (the transport keeps one copy of
// it, in the bytes it sends). Called concurrently from several workers.
using HttpAnswerCheck = std::function<std::string(
    const HttpRequest& request, const ResponseHead& head, const std::string& body)>;

// Calls cycle through `requests`. Without `check` a 200 answer's body is read and dropped.
std::unique_ptr<Transport> MakeHttpRequestTransport(const HttpTarget& target,
                                                    std::vector<HttpRequest> requests,
                                                    HttpAnswerCheck check = nullptr);

// The LitServe peer's: JSON `bodies` POSTed to target.path, one image each.
std::unique_ptr<Transport> MakeHttpTransport(const HttpTarget& target,
                                             std::vector<std::string> bodies);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_HTTP_TRANSPORT_H_
