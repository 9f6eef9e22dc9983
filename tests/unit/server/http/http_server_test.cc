// HttpServer (server/http/http_server.h) over loopback with raw POSIX sockets: answers, keep-alive
// and pipelining, HEAD, the limits (431, 413, 400), the request and idle timeouts (slow and idle
// clients are closed without an answer), the connection cap, handlers answering later from
// another thread, is_cancelled on a client hang-up, draining, Stop's wait for open exchanges, and
// the errors of Start. Nothing here asserts a duration: timeouts are small, and every wait has a
// generous upper bound that only guards against a hang.
#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/memory_budget.h"

namespace dinov3::http {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

// Hang guard for every blocking read and every wait in these tests.
constexpr int kHangGuardSeconds = 20;

struct Response {
  int status = 0;
  std::string head;  // status line and headers, without the blank line
  std::string body;

  // The value of the first header `name` (any case), or "" if absent.
  std::string Header(absl::string_view name) const {
    for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
      const size_t colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      if (absl::EqualsIgnoreCase(line.substr(0, colon), name)) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
    return "";
  }
};

// A blocking client on one connection to 127.0.0.1:port. Reads give up after the hang guard.
class Client {
 public:
  explicit Client(int port) : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    timeval limit{};
    limit.tv_sec = kHangGuardSeconds;
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    EXPECT_TRUE(connected_) << "connect: " << errno;
  }
  ~Client() { Close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  int fd() const { return fd_; }

  // True when every byte was sent (false once the server has closed the connection).
  bool Send(absl::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t sent = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return true;
  }

  // The next answer; nullopt if the connection ends (or the guard passes) before it is whole.
  // `head_request`: the answer to a HEAD request has no body, whatever Content-Length says.
  std::optional<Response> Read(bool head_request = false) {
    size_t end;
    while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return std::nullopt;
    }
    Response response;
    response.head = pending_.substr(0, end);
    pending_.erase(0, end + 4);
    const std::string status_line = response.head.substr(0, response.head.find("\r\n"));
    if (!absl::SimpleAtoi(status_line.substr(9, 3), &response.status)) return std::nullopt;
    size_t length = 0;
    if (!head_request && !absl::SimpleAtoi(response.Header("Content-Length"), &length)) {
      length = 0;
    }
    while (pending_.size() < length) {
      if (!Fill()) return std::nullopt;
    }
    response.body = pending_.substr(0, length);
    pending_.erase(0, length);
    return response;
  }

  // True when the server closes the connection (EOF or reset) before the guard passes; `rest`
  // gets whatever arrives before that (including bytes already buffered by Read).
  bool ClosedByServer(std::string* rest = nullptr) {
    while (Fill()) {
    }
    if (rest != nullptr) *rest = pending_;
    return closed_;
  }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  // Reads more into pending_; false on EOF, reset or the guard (closed_ says which).
  bool Fill() {
    char buffer[4096];
    const ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
    if (got > 0) {
      pending_.append(buffer, static_cast<size_t>(got));
      return true;
    }
    closed_ = got == 0 || errno == ECONNRESET;
    return false;
  }

  int fd_;
  bool connected_ = false;
  bool closed_ = false;
  std::string pending_;
};

// False when a connection to 127.0.0.1:port is refused or closed at once, unanswered.
bool Listening(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  timeval limit{};
  limit.tv_sec = kHangGuardSeconds;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool listening = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  if (listening) {
    const char request[] = "GET / HTTP/1.1\r\n\r\n";
    send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL);
    char byte;
    listening = recv(fd, &byte, 1, 0) > 0;
  }
  close(fd);
  return listening;
}

// One request on a new connection; its answer.
std::optional<Response> Exchange(int port, absl::string_view request, bool head = false) {
  Client client(port);
  if (!client.Send(request)) return std::nullopt;
  return client.Read(head);
}

// Exchanges a handler keeps to answer later, from the test's thread.
class HeldExchanges {
 public:
  HttpHandler Handler() {
    return [this](HttpExchange exchange) {
      absl::MutexLock lock(&mu_);
      held_.push_back(std::move(exchange));
    };
  }

  // The oldest held exchange; waits (within the guard) for the handler to get one.
  std::optional<HttpExchange> Take() {
    absl::MutexLock lock(&mu_);
    const auto some = [this] { return !held_.empty(); };
    mu_.AwaitWithTimeout(absl::Condition(&some), absl::Seconds(kHangGuardSeconds));
    if (held_.empty()) return std::nullopt;
    HttpExchange exchange = std::move(held_.front());
    held_.pop_front();
    return exchange;
  }

  // Waits (within the guard) until `n` exchanges are held.
  bool AwaitCount(size_t n) {
    absl::MutexLock lock(&mu_);
    const auto enough = [this, n] { return held_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(kHangGuardSeconds));
  }

 private:
  absl::Mutex mu_;
  std::deque<HttpExchange> held_ ABSL_GUARDED_BY(mu_);
};

HttpResponse Text(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.content_type = "text/plain";
  response.body = std::move(body);
  return response;
}

// Answers at once: "<METHOD> <path> [?<query>] <body>", with an X-Test header.
void EchoHandler(HttpExchange exchange) {
  const HttpRequest& request = exchange.request;
  HttpResponse response =
      Text(200, absl::StrCat(request.method, " ", request.path, request.query.empty() ? "" : "?",
                             request.query, " ", request.body));
  response.headers.emplace_back("X-Test", "yes");
  std::move(exchange.respond)(std::move(response));
}

HttpServerOptions SmallOptions() {
  HttpServerOptions options;
  options.name = "test";
  options.listen = "127.0.0.1:0";
  options.max_connections = 16;
  options.max_header_bytes = 1024;
  options.max_body_bytes = 1000;
  options.request_timeout = absl::Seconds(kHangGuardSeconds);
  options.idle_timeout = absl::Seconds(kHangGuardSeconds);
  return options;
}

std::unique_ptr<HttpServer> StartOrDie(const HttpServerOptions& options, HttpHandler handler) {
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(options, std::move(handler));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  EXPECT_GT((*server)->port(), 0);
  EXPECT_STREQ((*server)->scheme(), "http");
  return *std::move(server);
}

TEST(HttpServerTest, AnswersAGetWithTheHandlersResponse) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  const auto reply = Exchange(server->port(), "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_THAT(reply->head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_EQ(reply->Header("Content-Type"), "text/plain");
  EXPECT_EQ(reply->Header("X-Test"), "yes");
  EXPECT_EQ(reply->Header("Content-Length"), std::to_string(reply->body.size()));
  EXPECT_EQ(reply->body, "GET /a/b?x=1&y=2 ");
}

TEST(HttpServerTest, StatusLinesHaveTheirReasonPhraseAlso499) {
  for (const auto& [status, line] :
       std::vector<std::pair<int, std::string>>{{415, "HTTP/1.1 415 Unsupported Media Type\r\n"},
                                                {499, "HTTP/1.1 499 Client Closed Request\r\n"}}) {
    auto server = StartOrDie(SmallOptions(), [status = status](HttpExchange exchange) {
      HttpResponse response;
      response.status = status;
      std::move(exchange.respond)(std::move(response));
    });
    ASSERT_NE(server, nullptr);
    const auto reply = Exchange(server->port(), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    ASSERT_TRUE(reply.has_value());
    EXPECT_THAT(reply->head, StartsWith(line));
  }
}

TEST(HttpServerTest, TheHandlerSeesTheWholeRequest) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(
      client.Send("POST /v1/embeddings HTTP/1.1\r\nHost: h\r\nX-Mixed-Case: Value\r\n"
                  "Content-Length: 5\r\n\r\nhello"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  const HttpRequest& request = exchange->request;
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.path, "/v1/embeddings");
  EXPECT_EQ(request.query, "");
  EXPECT_EQ(request.body, "hello");
  ASSERT_NE(request.Header("x-mixed-case"), nullptr);  // names in lower case, values as sent
  EXPECT_EQ(*request.Header("x-mixed-case"), "Value");
  EXPECT_EQ(request.Header("X-Mixed-Case"), nullptr);
  EXPECT_THAT(request.peer, StartsWith("ipv4:127.0.0.1:"));
  EXPECT_NE(request.received, absl::InfinitePast());
  EXPECT_FALSE(exchange->is_cancelled());
  std::move(exchange->respond)(Text(201, "made"));
  const auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(reply->body, "made");
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  for (const char* path : {"/one", "/two", "/three"}) {
    ASSERT_TRUE(client.Send(absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: h\r\n\r\n")));
    const auto reply = client.Read();
    ASSERT_TRUE(reply.has_value()) << path;
    EXPECT_EQ(reply->body, absl::StrCat("GET ", path, " ")) << path;
    EXPECT_NE(absl::AsciiStrToLower(reply->Header("Connection")), "close");
  }
  // Pipelined: both requests in one write, answered in order.
  ASSERT_TRUE(client.Send("GET /p1 HTTP/1.1\r\n\r\nGET /p2 HTTP/1.1\r\n\r\n"));
  const auto first = client.Read();
  const auto second = client.Read();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->body, "GET /p1 ");
  EXPECT_EQ(second->body, "GET /p2 ");
  // Connection: close is honoured: answered, then closed.
  ASSERT_TRUE(client.Send("GET /last HTTP/1.1\r\nConnection: close\r\n\r\n"));
  const auto last = client.Read();
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(last->body, "GET /last ");
  EXPECT_EQ(absl::AsciiStrToLower(last->Header("Connection")), "close");
  std::string rest;
  EXPECT_TRUE(client.ClosedByServer(&rest));
  EXPECT_THAT(rest, IsEmpty());
}

TEST(HttpServerTest, Http10ClosesAfterTheAnswer) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET /old HTTP/1.0\r\n\r\n"));
  const auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->body, "GET /old ");
  EXPECT_TRUE(client.ClosedByServer());
}

TEST(HttpServerTest, HeadHasTheContentLengthButNoBody) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("HEAD /h HTTP/1.1\r\n\r\n"));
  const auto head = client.Read(/*head_request=*/true);
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->Header("Content-Length"), std::to_string(std::string("HEAD /h ").size()));
  // The next answer on the connection starts right after the head's blank line: no body bytes.
  ASSERT_TRUE(client.Send("GET /g HTTP/1.1\r\n\r\n"));
  const auto get = client.Read();
  ASSERT_TRUE(get.has_value());
  EXPECT_THAT(get->head, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(get->body, "GET /g ");
}

TEST(HttpServerTest, AnOversizedHeadIsAnswered431AndClosed) {
  std::atomic<int> handled{0};
  auto server = StartOrDie(SmallOptions(), [&handled](HttpExchange exchange) {
    ++handled;
    EchoHandler(std::move(exchange));
  });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\nX-Padding: " + std::string(1500, 'a') + "\r\n\r\n"));
  const auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 431);
  EXPECT_THAT(reply->body, HasSubstr("1024 bytes"));
  EXPECT_EQ(absl::AsciiStrToLower(reply->Header("Connection")), "close");
  EXPECT_TRUE(client.ClosedByServer());
  EXPECT_EQ(handled.load(), 0);
  // A head just under the limit is served.
  const auto fits = Exchange(server->port(),
                             "GET / HTTP/1.1\r\nX-Padding: " + std::string(900, 'a') + "\r\n\r\n");
  ASSERT_TRUE(fits.has_value());
  EXPECT_EQ(fits->status, 200);
}

TEST(HttpServerTest, AnOversizedBodyIsAnswered413BeforeItIsSent) {
  std::atomic<int> handled{0};
  auto server = StartOrDie(SmallOptions(), [&handled](HttpExchange exchange) {
    ++handled;
    EchoHandler(std::move(exchange));
  });
  ASSERT_NE(server, nullptr);
  {
    // Only the head is sent: the answer cannot have waited for the body.
    Client client(server->port());
    ASSERT_TRUE(client.Send("POST /big HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n"));
    const auto reply = client.Read();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 413);
    EXPECT_THAT(reply->body, HasSubstr("1000 bytes"));
    EXPECT_TRUE(client.ClosedByServer());
  }
  {
    // A chunked body: refused at the chunk that crosses the limit.
    Client client(server->port());
    ASSERT_TRUE(client.Send("POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n"));
    const auto reply = client.Read();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 413);
    EXPECT_TRUE(client.ClosedByServer());
  }
  EXPECT_EQ(handled.load(), 0);
  // A body at the limit is served.
  const auto fits = Exchange(server->port(), "POST /fits HTTP/1.1\r\nContent-Length: 1000\r\n\r\n" +
                                                 std::string(1000, 'b'));
  ASSERT_TRUE(fits.has_value());
  EXPECT_EQ(fits->status, 200);
  EXPECT_EQ(fits->body, "POST /fits " + std::string(1000, 'b'));
}

TEST(HttpServerTest, AClientStillSendingAnOversizedBodyReadsThe413) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  // The whole body goes out before the client reads: without the server's linger, closing a
  // socket with this much unread input would reset the connection and lose the 413.
  ASSERT_TRUE(client.Send("POST /big HTTP/1.1\r\nContent-Length: 300000\r\n\r\n" +
                          std::string(300000, 'z')));
  const auto reply = client.Read();
  ASSERT_TRUE(reply.has_value()) << "no answer: the connection was reset";
  EXPECT_EQ(reply->status, 413);
}

TEST(HttpServerTest, Expect100ContinueGetsContinueBeforeTheBodyIsSent) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(
      client.Send("POST /up HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  const auto go_on = client.Read();  // nothing of the body was sent yet
  ASSERT_TRUE(go_on.has_value());
  EXPECT_EQ(go_on->status, 100);
  ASSERT_TRUE(client.Send("hello"));
  const auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "POST /up hello");
  // Above the body limit: 413 at once, no 100.
  Client big(server->port());
  ASSERT_TRUE(
      big.Send("POST /up HTTP/1.1\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n"));
  const auto refused = big.Read();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 413);
}

TEST(HttpServerTest, AMalformedRequestIsAnswered400AndClosed) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  for (const char* bad :
       {"nonsense\r\n\r\n", "GET / HTTP/9.x\r\n\r\n", "GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
    Client client(server->port());
    ASSERT_TRUE(client.Send(bad));
    const auto reply = client.Read();
    ASSERT_TRUE(reply.has_value()) << bad;
    EXPECT_EQ(reply->status, 400) << bad;
    EXPECT_THAT(reply->body, HasSubstr("malformed HTTP request")) << bad;
    EXPECT_TRUE(client.ClosedByServer()) << bad;
  }
  // Still serving.
  const auto good = Exchange(server->port(), "GET / HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->status, 200);
}

// Sends `request` one byte at a time, a byte every 50 ms, until done, stopped, or the server
// closes the connection.
class Dripper {
 public:
  Dripper(Client* client, std::string request)
      : thread_([this, client, request = std::move(request)] {
          for (char byte : request) {
            if (stop_.load() || !client->Send(absl::string_view(&byte, 1))) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
        }) {}
  ~Dripper() {
    stop_.store(true);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(HttpServerTest, ARequestDrippedSlowerThanTheRequestTimeoutIsClosedUnanswered) {
  HttpServerOptions options = SmallOptions();
  options.request_timeout = absl::Milliseconds(300);
  std::atomic<int> handled{0};
  auto server = StartOrDie(options, [&handled](HttpExchange exchange) {
    ++handled;
    EchoHandler(std::move(exchange));
  });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  // ~400 bytes at one per 50 ms: 20 s in all, far beyond 300 ms (and each byte comes well
  // within 300 ms of the previous one, so only a limit in total closes it).
  Dripper dripper(&client, "GET / HTTP/1.1\r\nX-Padding: " + std::string(370, 'a') + "\r\n\r\n");
  std::string answer;
  EXPECT_TRUE(client.ClosedByServer(&answer));
  EXPECT_THAT(answer, IsEmpty());
  EXPECT_EQ(handled.load(), 0);
}

TEST(HttpServerTest, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
  HttpServerOptions options = SmallOptions();
  options.idle_timeout = absl::Milliseconds(300);
  auto server = StartOrDie(options, EchoHandler);
  ASSERT_NE(server, nullptr);
  {
    Client silent(server->port());  // never sends anything
    std::string answer;
    EXPECT_TRUE(silent.ClosedByServer(&answer));
    EXPECT_THAT(answer, IsEmpty());
  }
  {
    Client client(server->port());  // idle after one answer
    ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(client.Read().has_value());
    std::string more;
    EXPECT_TRUE(client.ClosedByServer(&more));
    EXPECT_THAT(more, IsEmpty());
  }
}

TEST(HttpServerTest, AtTheConnectionCapTheLongestWaitingConnectionMakesRoom) {
  HttpServerOptions options = SmallOptions();
  options.max_connections = 4;
  auto server = StartOrDie(options, EchoHandler);
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) {
    // One answer on each, in order: all are open and clients[0] has waited longest.
    clients.push_back(std::make_unique<Client>(server->port()));
    ASSERT_TRUE(clients.back()->Send("GET / HTTP/1.1\r\n\r\n"));
    ASSERT_TRUE(clients.back()->Read().has_value()) << i;
  }
  Client newcomer(server->port());
  ASSERT_TRUE(newcomer.Send("GET /new HTTP/1.1\r\n\r\n"));
  const auto reply = newcomer.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->body, "GET /new ");
  std::string answer;
  EXPECT_TRUE(clients[0]->ClosedByServer(&answer));
  EXPECT_THAT(answer, IsEmpty());
  for (int i = 1; i < 4; ++i) {  // the others are still served
    ASSERT_TRUE(clients[i]->Send("GET /again HTTP/1.1\r\n\r\n")) << i;
    const auto again = clients[i]->Read();
    ASSERT_TRUE(again.has_value()) << i;
    EXPECT_EQ(again->body, "GET /again ") << i;
  }
}

TEST(HttpServerTest, AtTheCapWithEveryConnectionBusyTheNewOneIsClosed) {
  HttpServerOptions options = SmallOptions();
  options.max_connections = 4;
  HeldExchanges held;
  auto server = StartOrDie(options, held.Handler());
  ASSERT_NE(server, nullptr);
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<Client>(server->port()));
    ASSERT_TRUE(clients.back()->Send(absl::StrCat("GET /", i, " HTTP/1.1\r\n\r\n")));
  }
  ASSERT_TRUE(held.AwaitCount(4));
  Client refused(server->port());
  std::string answer;
  EXPECT_TRUE(refused.ClosedByServer(&answer));
  EXPECT_THAT(answer, IsEmpty());
  for (int i = 0; i < 4; ++i) {  // the busy ones are untouched
    std::optional<HttpExchange> exchange = held.Take();
    ASSERT_TRUE(exchange.has_value());
    std::move(exchange->respond)(Text(200, exchange->request.path));
  }
  for (int i = 0; i < 4; ++i) {
    const auto reply = clients[i]->Read();
    ASSERT_TRUE(reply.has_value()) << i;
    EXPECT_EQ(reply->body, absl::StrCat("/", i));
  }
}

TEST(HttpServerTest, AHandlerMayAnswerLaterFromAnotherThread) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET /later HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  EXPECT_EQ(exchange->request.path, "/later");
  std::thread answerer([exchange = std::move(*exchange)]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::move(exchange.respond)(Text(202, "late"));
  });
  const auto reply = client.Read();
  answerer.join();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 202);
  EXPECT_EQ(reply->body, "late");
  // The pipelined request is handed on only after the first answer.
  std::optional<HttpExchange> second = held.Take();
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->request.path, "/after");
  std::move(second->respond)(Text(200, "second"));
  const auto second_reply = client.Read();
  ASSERT_TRUE(second_reply.has_value());
  EXPECT_EQ(second_reply->body, "second");
}

TEST(HttpServerTest, AHandlerThatThrowsGets500AndTheConnectionCloses) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), [&held](HttpExchange exchange) {
    if (exchange.request.path == "/throw") throw std::runtime_error("handler bug");
    held.Handler()(std::move(exchange));
  });
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET /throw HTTP/1.1\r\n\r\n"));
  const auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 500);
  EXPECT_TRUE(client.ClosedByServer());
  // Still serving; and Stop does not wait for the exchange the handler threw away.
  Client next(server->port());
  ASSERT_TRUE(next.Send("GET /fine HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  std::move(exchange->respond)(Text(200, "fine"));
  ASSERT_TRUE(next.Read().has_value());
  const absl::Time deadline = absl::Now() + absl::Seconds(kHangGuardSeconds);
  server->Stop(deadline);
  EXPECT_LT(absl::Now(), deadline);
}

TEST(HttpServerTest, IsCancelledTurnsTrueWhenTheClientHangsUp) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  auto client = std::make_unique<Client>(server->port());
  ASSERT_TRUE(client->Send("GET /slow HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  EXPECT_FALSE(exchange->is_cancelled());
  client.reset();  // closes the socket
  const absl::Time guard = absl::Now() + absl::Seconds(kHangGuardSeconds);
  while (!exchange->is_cancelled() && absl::Now() < guard) absl::SleepFor(absl::Milliseconds(5));
  EXPECT_TRUE(exchange->is_cancelled());
  std::move(exchange->respond)(Text(200, "nobody listens"));  // harmless
  // The server is still fine.
  Client next(server->port());
  ASSERT_TRUE(next.Send("GET /next HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> second = held.Take();
  ASSERT_TRUE(second.has_value());
  std::move(second->respond)(Text(200, "ok"));
  const auto reply = next.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->body, "ok");
}

TEST(HttpServerTest, DrainingAnswers503AndCloses) {
  HttpServerOptions options = SmallOptions();
  options.draining_body = "{\"error\":\"draining\"}";
  options.draining_content_type = "application/json";
  std::atomic<int> handled{0};
  auto server = StartOrDie(options, [&handled](HttpExchange exchange) {
    ++handled;
    EchoHandler(std::move(exchange));
  });
  ASSERT_NE(server, nullptr);
  Client kept(server->port());  // a keep-alive connection from before the drain
  ASSERT_TRUE(kept.Send("GET / HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(kept.Read().has_value());
  server->StartDraining();
  Client fresh(server->port());
  for (Client* client : {&kept, &fresh}) {
    ASSERT_TRUE(client->Send("GET / HTTP/1.1\r\n\r\n"));
    const auto reply = client->Read();
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 503);
    EXPECT_EQ(reply->body, "{\"error\":\"draining\"}");
    EXPECT_EQ(reply->Header("Content-Type"), "application/json");
    EXPECT_EQ(absl::AsciiStrToLower(reply->Header("Connection")), "close");
    EXPECT_TRUE(client->ClosedByServer());
  }
  EXPECT_EQ(handled.load(), 1);
}

TEST(HttpServerTest, AnAnswerAfterStartDrainingClosesTheConnection) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET / HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  server->StartDraining();
  std::move(exchange->respond)(Text(200, "finished"));
  const auto reply = client.Read();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->body, "finished");  // accepted before the drain: answered normally
  EXPECT_EQ(absl::AsciiStrToLower(reply->Header("Connection")), "close");
  EXPECT_TRUE(client.ClosedByServer());
}

TEST(HttpServerTest, StopWaitsUntilALargeAnswerIsWrittenWhole) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET /large HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  // Far more than a socket buffer: the write needs the client to read while Stop runs.
  const std::string large(8 << 20, 'x');
  std::move(exchange->respond)(Text(200, large));
  std::thread stopper([&server] { server->Stop(absl::Now() + absl::Seconds(kHangGuardSeconds)); });
  const auto reply = client.Read();
  stopper.join();
  ASSERT_TRUE(reply.has_value()) << "the answer was cut off by Stop";
  EXPECT_EQ(reply->body.size(), large.size());
}

TEST(HttpServerTest, ABodyIsRefused429WhenTheBudgetHasNoRoomForIt) {
  MemoryBudget budget(4000);
  HttpServerOptions options = SmallOptions();
  options.body_budget = &budget;
  HeldExchanges held;
  auto server = StartOrDie(options, held.Handler());
  ASSERT_NE(server, nullptr);
  // 900 bytes reserve 4 x 900 = 3600 of the 4000 until the answer is written.
  Client first(server->port());
  ASSERT_TRUE(
      first.Send("POST /a HTTP/1.1\r\nContent-Length: 900\r\n\r\n" + std::string(900, 'a')));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  EXPECT_EQ(budget.used(), 4 * 900);
  const auto refused = Exchange(server->port(), "POST /b HTTP/1.1\r\nContent-Length: 200\r\n\r\n");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status, 429);
  EXPECT_THAT(refused->body, HasSubstr("memory budget"));
  std::move(exchange->respond)(Text(200, "done"));
  ASSERT_TRUE(first.Read().has_value());
  // Returned once the answer is written: the next request fits again.
  Client second(server->port());
  ASSERT_TRUE(
      second.Send("POST /c HTTP/1.1\r\nContent-Length: 200\r\n\r\n" + std::string(200, 'c')));
  std::optional<HttpExchange> next = held.Take();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(budget.used(), 4 * 200);
  std::move(next->respond)(Text(200, "done"));
  ASSERT_TRUE(second.Read().has_value());
}

TEST(HttpServerTest, AnErrorAfterAHeadRequestHasItsBody) {
  auto server = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("HEAD /h HTTP/1.1\r\n\r\n"));
  ASSERT_TRUE(client.Read(/*head_request=*/true).has_value());
  ASSERT_TRUE(client.Send("POST /big HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n"));
  std::string rest;
  EXPECT_TRUE(client.ClosedByServer(&rest));
  EXPECT_THAT(rest, HasSubstr("413"));
  EXPECT_THAT(rest, HasSubstr("larger than the limit"));  // the body is sent, not just its length
}

TEST(HttpServerTest, StopWaitsForAnOpenExchangeToBeAnswered) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  Client idle(server->port());
  ASSERT_TRUE(idle.Send("GET /first HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> first = held.Take();
  ASSERT_TRUE(first.has_value());
  std::move(first->respond)(Text(200, "first"));
  ASSERT_TRUE(idle.Read().has_value());  // now idle, keep-alive

  Client busy(server->port());
  ASSERT_TRUE(busy.Send("GET /busy HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  std::atomic<bool> answered{false};
  std::thread answerer([&answered, exchange = std::move(*exchange)]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    answered.store(true);
    std::move(exchange.respond)(Text(200, "answered during Stop"));
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(kHangGuardSeconds);
  server->Stop(deadline);
  EXPECT_TRUE(answered.load());  // Stop returned only after the answer was given
  // ... and did not wait for `first`, answered but still in scope, until the deadline.
  EXPECT_LT(absl::Now(), deadline);
  answerer.join();
  const auto reply = busy.Read();
  ASSERT_TRUE(reply.has_value()) << "the answer given during Stop was not written";
  EXPECT_EQ(reply->body, "answered during Stop");
  EXPECT_TRUE(busy.ClosedByServer());
  std::string rest;
  EXPECT_TRUE(idle.ClosedByServer(&rest));  // the idle connection is closed, unanswered
  EXPECT_THAT(rest, IsEmpty());
  EXPECT_FALSE(Listening(server->port()));
}

TEST(HttpServerTest, StopGivesUpAtTheDeadlineAndALateAnswerIsHarmless) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  Client client(server->port());
  ASSERT_TRUE(client.Send("GET /never HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  server->Stop(absl::Now() + absl::Milliseconds(100));
  std::string answer;
  EXPECT_TRUE(client.ClosedByServer(&answer));
  EXPECT_THAT(answer, IsEmpty());
  EXPECT_TRUE(exchange->is_cancelled());
  server.reset();
  std::move(exchange->respond)(Text(200, "too late"));  // after the server is gone
}

TEST(HttpServerTest, TheDestructorStopsAServerWithOpenConnections) {
  HeldExchanges held;
  auto server = StartOrDie(SmallOptions(), held.Handler());
  ASSERT_NE(server, nullptr);
  Client idle(server->port());
  Client busy(server->port());
  ASSERT_TRUE(busy.Send("GET / HTTP/1.1\r\n\r\n"));
  std::optional<HttpExchange> exchange = held.Take();
  ASSERT_TRUE(exchange.has_value());
  const int port = server->port();
  server.reset();
  EXPECT_TRUE(idle.ClosedByServer());
  EXPECT_TRUE(busy.ClosedByServer());
  EXPECT_TRUE(exchange->is_cancelled());
  EXPECT_FALSE(Listening(port));
}

TEST(HttpServerTest, BadAddressesAreInvalidArguments) {
  for (const char* bad : {"", "8080", "host:", "host:port", "127.0.0.1:70000", "127.0.0.1:-1",
                          ":8080", "[::1]", "[::1]8080", "[::1]:x"}) {
    HttpServerOptions options = SmallOptions();
    options.listen = bad;
    const auto server = HttpServer::Start(options, EchoHandler);
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(server.status().message(), HasSubstr("test: ")) << bad;
  }
}

TEST(HttpServerTest, ATakenPortIsUnavailable) {
  auto first = StartOrDie(SmallOptions(), EchoHandler);
  ASSERT_NE(first, nullptr);
  HttpServerOptions options = SmallOptions();
  options.listen = absl::StrCat("127.0.0.1:", first->port());
  const auto second = HttpServer::Start(options, EchoHandler);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("cannot listen on " + options.listen));
}

TEST(HttpServerTest, MissingTlsFilesAreInvalidArguments) {
  HttpServerOptions options = SmallOptions();
  options.cert_file = "/nonexistent/server.crt";
  options.key_file = "/nonexistent/server.key";
  const auto server = HttpServer::Start(options, EchoHandler);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(server.status().message(), HasSubstr("/nonexistent/server.crt"));
}

TEST(HttpServerTest, ListensOnIpv6Loopback) {
  HttpServerOptions options = SmallOptions();
  options.listen = "[::1]:0";
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, EchoHandler);
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  EXPECT_GT((*server)->port(), 0);
}

}  // namespace
}  // namespace dinov3::http
