// MetricsEndpoint: a real HTTP exchange on loopback for each kind of request, and the errors
// of Start.
#include "server/metrics/metrics_endpoint.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace dinov3::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// Sends `request` to 127.0.0.1:port and returns everything the server wrote back.
std::string Exchange(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(send(fd, request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
  std::string reply;
  char buffer[4096];
  ssize_t got;
  while ((got = recv(fd, buffer, sizeof(buffer), 0)) > 0) reply.append(buffer, got);
  close(fd);
  return reply;
}

TEST(MetricsEndpointTest, ServesTheScrapeOnGetMetrics) {
  ServerMetrics metrics("9.9.9");
  metrics.RecordBatch("cpu", 4, 0.1);
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  ASSERT_GT((*endpoint)->port(), 0);
  const std::string reply =
      Exchange((*endpoint)->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(reply, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(reply, HasSubstr("\r\n\r\n# HELP "));
  EXPECT_THAT(reply, HasSubstr("dinov3_images_total 4\n"));
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

TEST(MetricsEndpointTest, ASilentClientDoesNotHoldTheEndpoint) {
  ServerMetrics metrics("v");
  auto endpoint = MetricsEndpoint::Start("127.0.0.1:0", metrics);
  ASSERT_TRUE(endpoint.ok());
  // Connects and sends half a request head, then nothing: given up after the 5 s limit.
  const int idle = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>((*endpoint)->port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(idle, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(send(idle, "GET /met", 8, 0), 8);
  EXPECT_THAT(Exchange((*endpoint)->port(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
  close(idle);
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
