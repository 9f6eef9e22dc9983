// MetricsEndpoint: a real HTTP exchange on loopback for each kind of request, the errors of
// Start, and clients that never finish their request (idle, slowloris) neither delaying a scrape
// nor being kept open past the head timeout.
#include "server/metrics/metrics_endpoint.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace dinov3::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A socket connected to 127.0.0.1:port whose reads give up after 10 s (a broken endpoint fails
// the test instead of hanging it).
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval limit{};
  limit.tv_sec = 10;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  return fd;
}

// Sends `request` to 127.0.0.1:port and returns everything the server wrote back.
std::string Exchange(int port, const std::string& request) {
  const int fd = Connect(port);
  EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string reply;
  char buffer[4096];
  ssize_t got;
  while ((got = recv(fd, buffer, sizeof(buffer), 0)) > 0) reply.append(buffer, got);
  close(fd);
  return reply;
}

TEST(MetricsEndpointTest, ServesTheScrapeOnGetMetrics) {
  ServerMetrics metrics("9.9.9");
  metrics.RecordBatch("m", "cpu", 4, 0.1);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  const std::string reply =
      Exchange((*endpoint)->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\n# HELP "));
  EXPECT_THAT(reply, HasSubstr("dinov3_images_total{model=\"m\"} 4\n"));
  EXPECT_THAT(reply, HasSubstr("dinov3_build_info{version=\"9.9.9\"} 1\n"));
  const size_t body = reply.find("\r\n\r\n") + 4;
  EXPECT_THAT(reply, HasSubstr("Content-Length: " + std::to_string(reply.size() - body)));
}

TEST(MetricsEndpointTest, BasicAuthAdmitsOnlyTheConfiguredPairs) {
  ServerMetrics metrics("v");
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics, {"prom:s3cret", "other:pw"});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  const std::string refused = Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(refused, StartsWith("HTTP/1.1 401 Unauthorized\r\n"));
  EXPECT_THAT(refused, HasSubstr("WWW-Authenticate: Basic realm=\"dinov3 metrics\"\r\n"));
  EXPECT_THAT(refused, Not(HasSubstr("dinov3_")));
  // base64("prom:s3cret") = cHJvbTpzM2NyZXQ=, base64("prom:s3cres") = cHJvbTpzM2NyZXM=
  EXPECT_THAT(
      Exchange(port, "GET /metrics HTTP/1.1\r\nAuthorization: Basic cHJvbTpzM2NyZXM=\r\n\r\n"),
      StartsWith("HTTP/1.1 401"));
  EXPECT_THAT(
      Exchange(port, "GET /metrics HTTP/1.1\r\nAuthorization: Bearer cHJvbTpzM2NyZXQ=\r\n\r\n"),
      StartsWith("HTTP/1.1 401"));
  const std::string admitted = Exchange(
      port, "GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization:  Basic cHJvbTpzM2NyZXQ=\r\n\r\n");
  EXPECT_THAT(admitted, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(admitted, HasSubstr("dinov3_build_info"));
  // base64("other:pw") = b3RoZXI6cHc=
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\nAuthorization: Basic b3RoZXI6cHc=\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
}

TEST(MetricsEndpointTest, QueryStringHeadAndErrors) {
  ServerMetrics metrics("v");
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  EXPECT_THAT(Exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n"), StartsWith("HTTP/1.1 200"));
  const std::string head = Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
  EXPECT_THAT(Exchange(port, "GET / HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Exchange(port, "POST /metrics HTTP/1.1\r\n\r\n"), StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(Exchange(port, "nonsense\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  // Still serving after the bad ones.
  EXPECT_THAT(Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n"), HasSubstr("dinov3_queue_images"));
}

// A slowloris client: sends a request head one byte every 200 ms (never reaching its end)
// until stopped or the server closes the connection.
class Slowloris {
 public:
  explicit Slowloris(int port) : fd_(Connect(port)), thread_([this] { Drip(); }) {}
  ~Slowloris() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  int fd() const { return fd_; }

 private:
  void Drip() {
    const std::string head = "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(100, 'a');
    for (char byte : head) {  // at most ~25 s, then silent
      if (stop_ || send(fd_, &byte, 1, MSG_NOSIGNAL) != 1) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  const int fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// True when the server closed `fd`: a read returns 0 (FIN) or ECONNRESET (closed with unread
// bytes) within the 10 s receive limit of Connect.
bool ClosedByServer(int fd) {
  char buffer[256];
  while (true) {
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got == 0) return true;
    if (got < 0) return errno == ECONNRESET;
  }
}

TEST(MetricsEndpointTest, ASilentClientDoesNotHoldTheEndpoint) {
  ServerMetrics metrics("v");
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok());
  // Connects and sends half a request head, then nothing: served alongside, then closed.
  const int idle = Connect((*endpoint)->port());
  ASSERT_EQ(send(idle, "GET /met", 8, 0), 8);
  EXPECT_THAT(Exchange((*endpoint)->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
  EXPECT_TRUE(ClosedByServer(idle));
  close(idle);
}

// The issue: "idle connections and a slowloris client on /metrics: a scrape still answers
// within 1 s" (before, each idle connection held the endpoint for 5 s).
TEST(MetricsEndpointTest, IdleAndSlowlorisClientsDoNotDelayAScrape) {
  ServerMetrics metrics("v");
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok());
  const int port = (*endpoint)->port();
  std::vector<int> idle;
  for (int i = 0; i < MetricsEndpoint::kMaxConnections; ++i) idle.push_back(Connect(port));
  Slowloris slowloris(port);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few bytes dripped
  const auto start = std::chrono::steady_clock::now();
  const std::string reply = Exchange(port, "GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("dinov3_build_info"));
  for (int fd : idle) close(fd);
}

TEST(MetricsEndpointTest, IdleAndSlowlorisConnectionsAreClosedAfterTheHeadTimeout) {
  ServerMetrics metrics("v");
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok());
  const int idle = Connect((*endpoint)->port());
  EXPECT_TRUE(ClosedByServer(idle));
  close(idle);
  // The head's time limit is in total: a byte every 200 ms does not extend it.
  Slowloris slowloris((*endpoint)->port());
  EXPECT_TRUE(ClosedByServer(slowloris.fd()));
}

TEST(MetricsEndpointTest, AnOversizedHeadIsRefused) {
  ServerMetrics metrics("v");
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok());
  const std::string huge = "GET /metrics HTTP/1.1\r\nX-Padding: " + std::string(9000, 'a');
  EXPECT_THAT(Exchange((*endpoint)->port(), huge), StartsWith("HTTP/1.1 431"));
}

TEST(MetricsEndpointTest, BadAddressesAreRefused) {
  ServerMetrics metrics("v");
  for (const char* bad : {"", "9464", "host:", "host:port", "0.0.0.0:70000", "0.0.0.0:-1"}) {
    auto endpoint = MetricsEndpoint::Start(bad, metrics);
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(endpoint.status().message(), HasSubstr("metrics.listen")) << bad;
  }
}

TEST(MetricsEndpointTest, TakenPortIsUnavailable) {
  ServerMetrics metrics("v");
  auto first = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(first.ok());
  auto second = MetricsEndpoint::Start("127.0.0.1:" + std::to_string((*first)->port()), metrics);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot serve metrics"));
}

}  // namespace
}  // namespace dinov3::metrics
