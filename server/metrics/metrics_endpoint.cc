#include "server/metrics/metrics_endpoint.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/secret_file.h"

namespace dinov3::metrics {
namespace {

constexpr size_t kMaxRequestHead = 8 << 10;
constexpr int kIoTimeoutSeconds = 5;

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
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
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

// Waits until `fd` is ready for `events` or `deadline` passes (false).
bool WaitReady(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int ready = poll(&p, 1, static_cast<int>(left));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return false;
  }
}

void SendAll(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty() && WaitReady(fd, POLLOUT, deadline)) {
    const ssize_t sent = send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (sent <= 0) return;
    data.remove_prefix(static_cast<size_t>(sent));
  }
}

void Respond(int fd, const char* status, const char* content_type, const std::string& body,
             bool head, Clock::time_point deadline, absl::string_view extra_header = "") {
  SendAll(fd,
          absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                       "\r\nContent-Length: ", body.size(), "\r\n", extra_header,
                       "Connection: close\r\n\r\n"),
          deadline);
  if (!head) SendAll(fd, body, deadline);
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
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
  while (true) {
    const int ready = poll(fds, wake_[0] >= 0 ? 2 : 1, -1);
    if (ready < 0 && errno == EINTR) continue;
    if (fds[1].revents & POLLIN) return;  // stopping
    if (ready < 0 || (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))) {
      spdlog::error("metrics endpoint on port {} failed ({}); /metrics is no longer served", port_,
                    ready < 0 ? std::strerror(errno) : "socket error");
      return;
    }
    if (!(fds[0].revents & POLLIN)) continue;
    const int connection = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) {
      // Out of descriptors (EMFILE, ENFILE) or similar: the listening socket stays readable,
      // so wait a little instead of spinning.
      if (errno != EINTR && errno != ECONNABORTED) poll(&fds[1], wake_[0] >= 0 ? 1 : 0, 100);
      continue;
    }
    Answer(connection, Clock::now() + std::chrono::seconds(kIoTimeoutSeconds));
    close(connection);
  }
}

void MetricsEndpoint::Answer(int connection, std::chrono::steady_clock::time_point deadline) {
  std::string head;
  char buffer[2048];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < kMaxRequestHead &&
         WaitReady(connection, POLLIN, deadline)) {
    const ssize_t got = recv(connection, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) break;
    head.append(buffer, static_cast<size_t>(got));
  }
  const std::string_view line = std::string_view(head).substr(0, head.find("\r\n"));
  const size_t first_space = line.find(' ');
  const size_t second_space = line.find(' ', first_space + 1);
  if (first_space == std::string_view::npos || second_space == std::string_view::npos) {
    Respond(connection, "400 Bad Request", "text/plain", "bad request\n", false, deadline);
    return;
  }
  const std::string_view method = line.substr(0, first_space);
  std::string_view path = line.substr(first_space + 1, second_space - first_space - 1);
  path = path.substr(0, path.find('?'));
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    Respond(connection, "405 Method Not Allowed", "text/plain", "use GET\n", false, deadline);
  } else if (!accepted_authorizations_.empty() &&
             !MatchesAnySecret(accepted_authorizations_,
                               AuthorizationHeader(absl::string_view(head)))) {
    Respond(connection, "401 Unauthorized", "text/plain", "basic auth required\n", head_only,
            deadline, "WWW-Authenticate: Basic realm=\"dinov3 metrics\"\r\n");
  } else if (path != "/metrics") {
    Respond(connection, "404 Not Found", "text/plain", "metrics are at /metrics\n", head_only,
            deadline);
  } else {
    Respond(connection, "200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics_.Scrape(),
            head_only, deadline);
  }
}

}  // namespace dinov3::metrics
