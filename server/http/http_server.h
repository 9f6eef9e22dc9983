// An HTTP/1.1 server on Boost.Beast (Boost.Asio): one event-loop thread owns every connection, so
// idle, slow and hung connections cost a socket and a small buffer, never a thread. Each complete
// request is handed to the handler as an HttpExchange (http_exchange.h) on that thread; the
// handler must not block: it answers at once or hands the work on and answers later from any
// thread. Requests on one connection are answered in order (no pipelining of answers: the next
// request is read once the previous answer is written). Keep-alive per HTTP/1.1.
//
// Limits, each with the status a client sees:
//   - max_header_bytes: the request line and headers (431, connection closed);
//   - max_body_bytes: the body (413, connection closed; checked against Content-Length before
//     any of the body is read, and again while reading a chunked body; on a plaintext
//     connection what the client still sends is read and dropped for up to 2 s before the close,
//     so that it sees the 413 rather than a reset);
//   - request_timeout: a request must arrive whole (head and body) within this time of its first
//     byte, in total, not per read, so a client dripping bytes (slowloris) gains nothing; the
//     connection is closed without an answer;
//   - idle_timeout: a connection waiting for its next request this long is closed;
//   - write_timeout: an answer must be written within this time, or the connection is closed;
//   - max_connections: at the cap, accepting a new connection closes the connection that has been
//     waiting longest for a request (idle or slowloris); when none waits, the new one is closed.
// A malformed request gets 400 and the connection is closed. A request with "Expect:
// 100-continue" gets "100 Continue" once its head is accepted (or 413 at once, unread).
// While the handler works, the server watches the socket: when the client hangs up (EOF or reset
// on a plain connection; a TLS client's close is seen once its TCP connection closes), the
// exchange's is_cancelled() turns true, so queued work is dropped as for a cancelled gRPC call.
//
// TLS when cert_file and key_file are set: the files are re-read every `tls_reload` for new
// connections (rotation without a restart; a pair that cannot be read keeps the previous one,
// with a warning); with client_ca_file, clients must present a certificate it signed.
//
// Drain: StartDraining() makes every request read from then on answered 503 with `draining_body`
// (Connection: close; with an empty draining_body the handlers answer, and connections close
// after that answer). Stop(deadline) closes the listener, waits until no exchange is open and
// every answer handed to `respond` is written (or the deadline), then closes every connection;
// the destructor calls Stop(now).
// Thread-safe; port() is constant after Start.
#ifndef DINOV3_SERVER_HTTP_HTTP_SERVER_H_
#define DINOV3_SERVER_HTTP_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/memory_budget.h"
#include "server/http/http_exchange.h"

namespace dinov3::http {

struct HttpServerOptions {
  std::string name = "http";  // for log lines
  // host:port ("127.0.0.1:8080", "[::]:8080", "0.0.0.0:0"; port 0 picks a free port, port()).
  std::string listen = "127.0.0.1:8080";
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  absl::Duration tls_reload = absl::Seconds(60);
  int max_connections = 1024;
  int64_t max_header_bytes = 16 << 10;
  int64_t max_body_bytes = 64 << 20;
  absl::Duration request_timeout = absl::Seconds(30);
  absl::Duration idle_timeout = absl::Seconds(60);
  absl::Duration write_timeout = absl::Seconds(30);
  // The body and content type of the 503 answer while draining; "" = no such answer: requests
  // reach the handler (which refuses what it must), connections close after their answer.
  std::string draining_body = "server is draining\n";
  std::string draining_content_type = "text/plain; charset=utf-8";
  // Where request bodies are accounted (may be null: not accounted; must outlive the server).
  // Once a request's head is in, kBodyTransientFactor times its Content-Length (the limit for a
  // chunked body) is reserved before any of the body is read, and held until its answer is
  // written: the body, the parsed JSON's copy of its strings, the decoded images. No room: 429,
  // and the connection closes unread.
  MemoryBudget* body_budget = nullptr;
};

inline constexpr int64_t kBodyTransientFactor = 4;

class HttpServer {
 public:
  // InvalidArgument for a malformed address or TLS files that cannot be used (naming the file),
  // Unavailable when the address cannot be bound. `handler` is called on the server's thread.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler handler);
  ~HttpServer();

  int port() const;
  // "http" or "https": for logs.
  const char* scheme() const;
  void StartDraining();
  void Stop(absl::Time deadline);

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dinov3::http

#endif  // DINOV3_SERVER_HTTP_HTTP_SERVER_H_
