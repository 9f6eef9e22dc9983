// The HTTP endpoint Prometheus scrapes: GET /metrics on its own address, separate from gRPC,
// answering with ServerMetrics::Scrape() (text exposition format 0.0.4).
//
// A deliberately small HTTP/1.1 server: one thread runs a poll() loop over non-blocking sockets,
// so up to kMaxConnections connections are served at once and none can delay another. Each
// connection is answered once and closed (Connection: close):
//   - its request head (≤ 8 KiB; longer → 431) must arrive within kHeadTimeout of the accept,
//     in total, not per byte (a client dripping bytes gains nothing); otherwise the connection
//     is closed without an answer;
//   - its answer must then be written within kWriteTimeout, or the connection is closed.
// At the cap, accepting a new connection closes the oldest one still reading its head (idle and
// slowloris clients), or, when every one is writing, the oldest writer: a new scrape is always
// served, whatever the earlier connections do.
// GET or HEAD /metrics → 200; other paths → 404; other methods → 405; no request line → 400.
// With basic-auth credentials, a request without one of them (compared in constant time) → 401.
// (prometheus-cpp's own civetweb Exposer cannot start threads in a LibTorch process on Debian:
// civetweb is built there with a 100 KiB thread stack, below LibTorch's static TLS.)
// Stops serving, closing every open connection, when destroyed. `metrics` must outlive the
// endpoint. Thread-safe: the connections live on the endpoint's thread only; port() is constant.
#ifndef DINOV3_SERVER_METRICS_METRICS_ENDPOINT_H_
#define DINOV3_SERVER_METRICS_METRICS_ENDPOINT_H_

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/metrics/server_metrics.h"

namespace dinov3::metrics {

class MetricsEndpoint {
 public:
  static constexpr int kMaxConnections = 16;
  static constexpr std::chrono::seconds kHeadTimeout{2};
  static constexpr std::chrono::seconds kWriteTimeout{5};

  // `listen` is host:port ("0.0.0.0:9464", "[::]:9464" (IPv4 too), "127.0.0.1:0"; port 0 picks a
  // free port, see port(); a host name binds its first address). InvalidArgument when
  // malformed, Unavailable when it cannot be bound. `basic_auth`: accepted "user:password"
  // pairs (empty: no authentication).
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(
      const std::string& listen, const ServerMetrics& metrics,
      const std::vector<std::string>& basic_auth = {});
  ~MetricsEndpoint();

  int port() const { return port_; }

 private:
  MetricsEndpoint(int listen_fd, int port, const ServerMetrics& metrics,
                  std::vector<std::string> accepted_authorizations);
  void Serve();
  // The whole HTTP answer (status line, headers, body) to a complete request head.
  std::string Answer(absl::string_view head) const;

  const int listen_fd_;
  const int port_;
  const ServerMetrics& metrics_;
  const std::vector<std::string> accepted_authorizations_;  // "Basic <base64>" header values
  int wake_[2] = {-1, -1};  // a pipe: writing to wake_[1] stops Serve
  std::thread thread_;
};

}  // namespace dinov3::metrics

#endif  // DINOV3_SERVER_METRICS_METRICS_ENDPOINT_H_
