// The HTTP transport against a scripted HTTP/1.1 server on loopback: keep-alive reuse,
// non-200 answers, Connection: close, a server that hangs up, and response-head parsing.
#include "client/bench/http_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace dinov3::bench {
namespace {

// Accepts connections one after another; answers each request with the next scripted reply
// (an empty reply closes the connection without answering).
class ScriptedHttpServer {
 public:
  explicit ScriptedHttpServer(std::vector<std::string> replies) : replies_(std::move(replies)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    listen(listener_, 8);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedHttpServer() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    thread_.join();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int connections() const { return connections_; }
  std::string last_request() const { return last_request_; }

 private:
  void Serve() {
    size_t next = 0;
    while (next < replies_.size()) {
      const int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      ++connections_;
      while (next < replies_.size()) {
        if (!ReadRequest(fd)) break;
        const std::string& reply = replies_[next++];
        if (reply.empty()) break;
        send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
        if (absl::StrContains(reply, "Connection: close")) break;
      }
      close(fd);
    }
  }

  bool ReadRequest(int fd) {
    std::string data;
    char buffer[4096];
    size_t head_end;
    while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) return false;
      data.append(buffer, n);
    }
    const size_t at = data.find("Content-Length: ");
    size_t length = 0;
    if (at != std::string::npos) {
      (void)absl::SimpleAtoi(data.substr(at + 16, data.find("\r\n", at) - at - 16), &length);
    }
    while (data.size() < head_end + 4 + length) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) return false;
      data.append(buffer, n);
    }
    last_request_ = data;
    return true;
  }

  std::vector<std::string> replies_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::string last_request_;
  std::thread thread_;
};

std::string Reply(int status, const std::string& body, const std::string& extra = "") {
  return absl::StrCat("HTTP/1.1 ", status, " X\r\ncontent-length: ", body.size(), "\r\n", extra,
                      "\r\n", body);
}

TEST(HttpTransportTest, KeepAliveErrorsCloseAndHangUp) {
  ScriptedHttpServer server({Reply(200, "{\"cls\":1}"), Reply(200, "{}"), Reply(503, "busy"),
                             Reply(200, "ok", "Connection: close\r\n"), "", Reply(200, "back")});
  std::unique_ptr<Transport> transport =
      MakeHttpTransport({server.address(), "/predict", 10}, {"{\"image\":\"AA==\"}"});
  ASSERT_TRUE(transport->Open(1).ok());
  CallResult r = transport->Call(0);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.response_bytes, 9u);
  EXPECT_TRUE(absl::StartsWith(server.last_request(), "POST /predict HTTP/1.1\r\n"));
  EXPECT_TRUE(absl::EndsWith(server.last_request(), "\r\n\r\n{\"image\":\"AA==\"}"));
  EXPECT_EQ(transport->Call(0).error, "");
  EXPECT_EQ(transport->Call(0).error, "HTTP_503");
  EXPECT_EQ(server.connections(), 1);  // kept alive so far
  EXPECT_EQ(transport->Call(0).error, "");  // server says Connection: close
  EXPECT_EQ(transport->Call(0).error, "CONNECTION");  // new connection, server hangs up
  EXPECT_EQ(transport->Call(0).error, "");  // and the next call reconnects
  EXPECT_EQ(server.connections(), 3);
  transport->Close();
}

TEST(HttpTransportTest, PreparedRequestsAndTheAnswerCheck) {
  ScriptedHttpServer server({Reply(200, "good", "Inference-Header-Content-Length: 2\r\n"),
                             Reply(200, "bad"), Reply(404, "{\"error\":\"no\"}")});
  std::vector<HttpRequest> requests = {{.path = "/v2/models/m/infer",
                                        .content_type = "application/octet-stream",
                                        .headers = {{"Inference-Header-Content-Length", "3"}},
                                        .body = std::string("{}\n\0\1", 5),
                                        .images = 4}};
  std::atomic<int> checked{0};
  std::unique_ptr<Transport> transport = MakeHttpRequestTransport(
      {.address = server.address(), .timeout_seconds = 10}, std::move(requests),
      [&](const HttpRequest& request, const ResponseHead& head, const std::string& body) {
        ++checked;
        EXPECT_EQ(request.images, 4);
        const auto length = head.headers.find("inference-header-content-length");
        return body == "good" && length != head.headers.end() && length->second == "2"
                   ? ""
                   : "BAD_RESPONSE";
      });
  ASSERT_TRUE(transport->Open(1).ok());
  CallResult r = transport->Call(0);
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(r.images, 4);
  EXPECT_EQ(r.response_bytes, 4u);
  EXPECT_TRUE(absl::StartsWith(server.last_request(), "POST /v2/models/m/infer HTTP/1.1\r\n"));
  EXPECT_TRUE(
      absl::StrContains(server.last_request(), "\r\nContent-Type: application/octet-stream\r\n"));
  EXPECT_TRUE(absl::StrContains(server.last_request(), "\r\nContent-Length: 5\r\n"));
  EXPECT_TRUE(
      absl::StrContains(server.last_request(), "\r\nInference-Header-Content-Length: 3\r\n"));
  EXPECT_TRUE(absl::EndsWith(server.last_request(), std::string("\r\n\r\n{}\n\0\1", 9)));
  EXPECT_EQ(transport->Call(0).error, "BAD_RESPONSE");
  EXPECT_EQ(transport->Call(0).error, "HTTP_404");  // not 200: not checked
  EXPECT_EQ(checked, 2);
  EXPECT_EQ(server.connections(), 1);
  transport->Close();
}

TEST(HttpTransportTest, UnreachableTargetFailsOpen) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);  // nothing listens there now
  std::unique_ptr<Transport> transport =
      MakeHttpTransport({absl::StrCat("127.0.0.1:", port), "/predict", 5}, {"{}"});
  EXPECT_EQ(transport->Open(1).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(MakeHttpTransport({"no-port", "/", 5}, {"{}"})->Open(1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ParseResponseHeadTest, StatusLengthAndConnection) {
  absl::StatusOr<ResponseHead> head = ParseResponseHead(
      "HTTP/1.1 200 OK\r\nServer: uvicorn\r\nContent-Length: 42\r\nconnection: Close\r\n\r\n");
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->content_length, 42u);
  EXPECT_TRUE(head->close);
  EXPECT_EQ(head->headers.at("server"), "uvicorn");
  EXPECT_FALSE(ParseResponseHead("HTTP/1.1 200 OK\r\n\r\n").ok());  // no length
  EXPECT_FALSE(ParseResponseHead("SPDY 200\r\nContent-Length: 1\r\n\r\n").ok());
  EXPECT_FALSE(
      ParseResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").ok());
}

}  // namespace
}  // namespace dinov3::bench
