#include "server/metrics/metrics_endpoint.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/common/secret_file.h"

namespace dinov3::metrics {
namespace {

constexpr size_t kMaxRequestHead = 8 << 10;
constexpr std::chrono::milliseconds kAcceptPause{100};  // out of descriptors

absl::Status Malformed(const std::string& listen) {
  return absl::InvalidArgumentError(absl::StrCat(
      "metrics.listen must be HOST:PORT (e.g. 0.0.0.0:9464 or [::]:9464), got '", listen, "'"));
}

// Splits "host:port" / "[v6]:port"; an empty host means all interfaces.
absl::Status SplitHostPort(const std::string& listen, std::string& host, std::string& port) {
  const size_t colon = listen.rfind(':');
  int number = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &number) ||
      number < 0 || number > 65535) {
    return Malformed(listen);
  }
  host = listen.substr(0, colon);
  port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> BindAndListen(const std::string& listen) {
  std::string host, port;
  if (absl::Status s = SplitHostPort(listen, host, port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (const int rc =
          getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics.listen '", listen, "': ", gai_strerror(rc)));
  }
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen, " (metrics.listen): ", error));
  }
  return fd;
}

int LocalPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return 0;
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

using Clock = std::chrono::steady_clock;

// The whole answer: status line, headers and (unless `head`) the body.
std::string Response(absl::string_view status, absl::string_view content_type,
                     absl::string_view body, bool head, absl::string_view extra_header = "") {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                      "\r\nContent-Length: ", body.size(), "\r\n", extra_header,
                      "Connection: close\r\n\r\n", head ? "" : body);
}

// The value of the request head's Authorization header ("" when there is none).
absl::string_view AuthorizationHeader(absl::string_view head) {
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    if (absl::EqualsIgnoreCase(line.substr(0, colon), "authorization")) {
      return absl::StripAsciiWhitespace(line.substr(colon + 1));
    }
  }
  return "";
}

// poll()'s timeout until `next` (-1: none).
int PollTimeoutMs(Clock::time_point now, Clock::time_point next) {
  if (next == Clock::time_point::max()) return -1;
  if (next <= now) return 0;
  const int64_t ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

// One accepted connection.
struct Connection {
  int fd = -1;                 // -1 once closed
  Clock::time_point deadline;  // of the current phase: head read, then answer write
  bool writing = false;        // false: reading the head into `data`; true: sending `data`
  std::string data;            // the head so far, then the answer
  size_t sent = 0;             // bytes of `data` already sent
};

// MetricsEndpoint::Answer.
using Answerer = absl::FunctionRef<std::string(absl::string_view head)>;

void Close(Connection& c) {
  if (c.fd >= 0) close(c.fd);
  c.fd = -1;
}

enum class HeadState { kReading, kComplete, kTooLarge, kGone };

// One non-blocking read of the request head. A client that half-closes after part of a head is
// answered for what it sent.
HeadState ReadHead(Connection& c) {
  char buffer[2048];
  const size_t room = std::min(sizeof(buffer), kMaxRequestHead - c.data.size());
  const ssize_t got = recv(c.fd, buffer, room, MSG_DONTWAIT);
  if (got < 0) {
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? HeadState::kReading
                                                                     : HeadState::kGone;
  }
  if (got == 0) return c.data.empty() ? HeadState::kGone : HeadState::kComplete;
  const size_t from = c.data.size() < 3 ? 0 : c.data.size() - 3;
  c.data.append(buffer, static_cast<size_t>(got));
  if (c.data.find("\r\n\r\n", from) != std::string::npos) return HeadState::kComplete;
  return c.data.size() >= kMaxRequestHead ? HeadState::kTooLarge : HeadState::kReading;
}

// One non-blocking write of the rest of the answer; closes the connection once all is sent or
// the peer is gone.
void SendSome(Connection& c) {
  const ssize_t sent =
      send(c.fd, c.data.data() + c.sent, c.data.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (sent > 0) c.sent += static_cast<size_t>(sent);
  if (sent <= 0 || c.sent == c.data.size()) Close(c);
}

// Closes one connection to make room: the oldest still reading its head, else the oldest one.
void EvictOne(std::vector<Connection>& open, int port) {
  auto victim =
      std::find_if(open.begin(), open.end(), [](const Connection& c) { return !c.writing; });
  if (victim == open.end()) victim = open.begin();
  spdlog::debug("metrics endpoint on port {}: {} connections open, closed the oldest {}", port,
                open.size(), victim->writing ? "writer" : "one still without a request");
  Close(*victim);
  open.erase(victim);
}

// Reads or writes what `revents` allows, answers a complete head, and closes the connection
// when done, gone or past its deadline.
void Progress(Connection& c, short revents, Clock::time_point now, Answerer answer) {
  if (c.writing) {
    if (revents & (POLLOUT | POLLERR | POLLHUP)) SendSome(c);
  } else if (revents & (POLLIN | POLLERR | POLLHUP)) {
    const HeadState state = ReadHead(c);
    if (state == HeadState::kGone) {
      Close(c);
    } else if (state != HeadState::kReading) {
      c.data = state == HeadState::kTooLarge
                   ? Response("431 Request Header Fields Too Large", "text/plain",
                              "request head over 8 KiB\n", false)
                   : answer(c.data);
      c.writing = true;
      c.deadline = now + MetricsEndpoint::kWriteTimeout;
      SendSome(c);
    }
  }
  if (c.fd >= 0 && now >= c.deadline) Close(c);
}

// Accepts what the listening socket holds, closing the oldest connections beyond the cap, and
// tries each new one at once; pauses accepting until `paused_until` when out of descriptors.
void AcceptNew(int listen_fd, int port, std::vector<Connection>& open, Clock::time_point now,
               Clock::time_point& paused_until, Answerer answer) {
  // At most the cap's worth at a time: the open connections get their turn too.
  for (int i = 0; i < MetricsEndpoint::kMaxConnections; ++i) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      // Out of descriptors (EMFILE, ENFILE) or similar: the listening socket stays readable,
      // so pause accepting a little instead of spinning.
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
        paused_until = now + kAcceptPause;
      }
      return;
    }
    if (open.size() >= static_cast<size_t>(MetricsEndpoint::kMaxConnections)) EvictOne(open, port);
    Connection& added = open.emplace_back();
    added.fd = fd;
    added.deadline = now + MetricsEndpoint::kHeadTimeout;
    Progress(added, POLLIN, now, answer);  // the head may be there already
    if (open.back().fd < 0) open.pop_back();
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const std::string& listen, const ServerMetrics& metrics,
    const std::vector<std::string>& basic_auth) {
  absl::StatusOr<int> fd = BindAndListen(listen);
  if (!fd.ok()) return fd.status();
  std::vector<std::string> accepted;
  for (const std::string& user_password : basic_auth) {
    accepted.push_back(absl::StrCat("Basic ", absl::Base64Escape(user_password)));
  }
  return std::unique_ptr<MetricsEndpoint>(
      new MetricsEndpoint(*fd, LocalPort(*fd), metrics, std::move(accepted)));
}

MetricsEndpoint::MetricsEndpoint(int listen_fd, int port, const ServerMetrics& metrics,
                                 std::vector<std::string> accepted_authorizations)
    : listen_fd_(listen_fd),
      port_(port),
      metrics_(metrics),
      accepted_authorizations_(std::move(accepted_authorizations)) {
  if (pipe2(wake_, O_CLOEXEC) != 0) wake_[0] = wake_[1] = -1;
  thread_ = std::thread([this] { Serve(); });
}

MetricsEndpoint::~MetricsEndpoint() {
  if (wake_[1] >= 0) {
    const char stop = 1;
    (void)!write(wake_[1], &stop, 1);
  } else {
    shutdown(listen_fd_, SHUT_RDWR);  // no pipe: poll sees the closed socket
  }
  thread_.join();
  close(listen_fd_);
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
}

void MetricsEndpoint::Serve() {
  std::vector<Connection> open;
  std::vector<pollfd> fds;
  Clock::time_point accept_paused_until;
  while (true) {
    Clock::time_point now = Clock::now();
    const bool accepting = now >= accept_paused_until;
    Clock::time_point next = accepting ? Clock::time_point::max() : accept_paused_until;
    // A pollfd with a negative descriptor (no wake pipe) is ignored by poll.
    fds.assign(
        {{wake_[0], POLLIN, 0}, {listen_fd_, static_cast<short>(accepting ? POLLIN : 0), 0}});
    for (const Connection& c : open) {
      fds.push_back({c.fd, static_cast<short>(c.writing ? POLLOUT : POLLIN), 0});
      next = std::min(next, c.deadline);
    }
    const int ready = poll(fds.data(), fds.size(), PollTimeoutMs(now, next));
    if (ready < 0 && errno == EINTR) continue;
    if (fds[0].revents & POLLIN) break;  // stopping
    if (ready < 0 || (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL))) {
      spdlog::error("metrics endpoint on port {} failed ({}); /metrics is no longer served", port_,
                    ready < 0 ? std::strerror(errno) : "socket error");
      break;
    }
    now = Clock::now();
    const auto answer = [this](absl::string_view head) { return Answer(head); };
    for (size_t i = 0; i < open.size(); ++i) Progress(open[i], fds[i + 2].revents, now, answer);
    open.erase(
        std::remove_if(open.begin(), open.end(), [](const Connection& c) { return c.fd < 0; }),
        open.end());
    if (fds[1].revents & POLLIN) {
      AcceptNew(listen_fd_, port_, open, now, accept_paused_until, answer);
    }
  }
  for (Connection& c : open) Close(c);
}

std::string MetricsEndpoint::Answer(absl::string_view head) const {
  const absl::string_view line = head.substr(0, head.find("\r\n"));
  const size_t first_space = line.find(' ');
  const size_t second_space = line.find(' ', first_space + 1);
  if (first_space == absl::string_view::npos || second_space == absl::string_view::npos) {
    return Response("400 Bad Request", "text/plain", "bad request\n", false);
  }
  const absl::string_view method = line.substr(0, first_space);
  absl::string_view path = line.substr(first_space + 1, second_space - first_space - 1);
  path = path.substr(0, path.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return Response("405 Method Not Allowed", "text/plain", "use GET\n", false);
  }
  if (!accepted_authorizations_.empty() &&
      !MatchesAnySecret(accepted_authorizations_, AuthorizationHeader(head))) {
    return Response("401 Unauthorized", "text/plain", "basic auth required\n", head_only,
                    "WWW-Authenticate: Basic realm=\"dinov3 metrics\"\r\n");
  }
  if (path != "/metrics") {
    return Response("404 Not Found", "text/plain", "metrics are at /metrics\n", head_only);
  }
  return Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics_.Scrape(),
                  head_only);
}

}  // namespace dinov3::metrics
