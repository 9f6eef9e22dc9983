// The HTTP endpoint Prometheus scrapes: GET /metrics on its own address, separate from gRPC,
// answering with ServerMetrics::Scrape() (text exposition format 0.0.4).
//
// A deliberately small HTTP/1.1 server on one thread, one connection at a time, each answered
// and closed (Connection: close); each exchange (request head ≤ 8 KiB, then the answer) must be
// done within 5 s in total, so a slow client cannot hold the port.
// GET or HEAD /metrics → 200; other paths → 404; other methods → 405. With basic-auth
// credentials, a request without one of them (compared in constant time) → 401. (prometheus-cpp's
// own civetweb Exposer cannot start threads in a LibTorch process on Debian: civetweb is built
// there with a 100 KiB thread stack, below LibTorch's static TLS.) Stops serving when destroyed.
// `metrics` must outlive the endpoint. Thread-safe.
#ifndef DINOV3_SERVER_METRICS_METRICS_ENDPOINT_H_
#define DINOV3_SERVER_METRICS_METRICS_ENDPOINT_H_

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "server/metrics/server_metrics.h"

namespace dinov3::metrics {

class MetricsEndpoint {
 public:
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
  void Answer(int connection, std::chrono::steady_clock::time_point deadline);

  const int listen_fd_;
  const int port_;
  const ServerMetrics& metrics_;
  const std::vector<std::string> accepted_authorizations_;  // "Basic <base64>" header values
  int wake_[2] = {-1, -1};  // a pipe: writing to wake_[1] stops Serve
  std::thread thread_;
};

}  // namespace dinov3::metrics

#endif  // DINOV3_SERVER_METRICS_METRICS_ENDPOINT_H_
