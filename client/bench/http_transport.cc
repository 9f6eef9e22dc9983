#include "client/bench/http_transport.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace dinov3::bench {
namespace {

constexpr size_t kMaxHeadBytes = 64 * 1024;

absl::StatusOr<std::pair<std::string, std::string>> SplitHostPort(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return absl::InvalidArgumentError(absl::StrCat("target '", address, "' must be HOST:PORT"));
  }
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, address.substr(colon + 1));
}

class HttpTransport : public Transport {
 public:
  HttpTransport(const HttpTarget& target, std::vector<HttpRequest> requests, HttpAnswerCheck check)
      : target_(target), requests_(std::move(requests)), check_(std::move(check)) {
    for (HttpRequest& request : requests_) {
      std::string text = absl::StrCat("POST ", request.path, " HTTP/1.1\r\nHost: ", target_.address,
                                      "\r\nContent-Type: ", request.content_type,
                                      "\r\nContent-Length: ", request.body.size(), "\r\n");
      for (const auto& [name, value] : request.headers) {
        absl::StrAppend(&text, name, ": ", value, "\r\n");
      }
      absl::StrAppend(&text, "Connection: keep-alive\r\n\r\n", request.body);
      texts_.push_back(std::move(text));
      request.body = std::string();  // held once, in texts_
    }
  }
  ~HttpTransport() override { Close(); }

  absl::Status Open(int workers) override {
    Close();
    absl::StatusOr<std::pair<std::string, std::string>> host_port = SplitHostPort(target_.address);
    if (!host_port.ok()) return host_port.status();
    host_ = host_port->first;
    port_ = host_port->second;
    sockets_.assign(workers, -1);
    pending_.assign(workers, std::string());
    bodies_.assign(workers, std::string());
    // Checks reachability once, so a wrong address fails the run instead of every call.
    absl::StatusOr<int> probe = Connect();
    if (!probe.ok()) return probe.status();
    sockets_[0] = *probe;
    return absl::OkStatus();
  }

  CallResult Call(int worker) override {
    const size_t index = next_.fetch_add(1) % requests_.size();
    const HttpRequest& request = requests_[index];
    int& fd = sockets_[worker];
    CallResult result;
    result.images = request.images;
    if (fd < 0) {
      absl::StatusOr<int> connected = Connect();
      if (!connected.ok()) return Failed(fd, result, "CONNECTION");
      fd = *connected;
    }
    if (!SendAll(fd, texts_[index])) return Failed(fd, result, "CONNECTION");
    std::string& pending = pending_[worker];
    pending.clear();
    absl::StatusOr<ResponseHead> head = ReadHead(fd, pending);
    if (!head.ok()) return Failed(fd, result, "CONNECTION");
    const bool check = check_ != nullptr && head->status == 200;
    std::string& body = bodies_[worker];
    body.clear();
    if (!ReadBody(fd, head->content_length, pending, check ? &body : nullptr)) {
      return Failed(fd, result, "CONNECTION");
    }
    result.response_bytes = head->content_length;
    if (head->close) {
      ::close(fd);
      fd = -1;
    }
    if (head->status != 200) {
      result.error = absl::StrCat("HTTP_", head->status);
    } else if (check) {
      result.error = check_(request, *head, body);
    }
    return result;
  }

  void Close() override {
    for (int& fd : sockets_) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }

 private:
  static CallResult Failed(int& fd, CallResult result, const char* error) {
    if (fd >= 0) ::close(fd);
    fd = -1;
    result.error = error;
    return result;
  }

  absl::StatusOr<int> Connect() const {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found) != 0 || found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("cannot resolve ", target_.address));
    }
    int fd = ::socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    const bool connected = fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0;
    freeaddrinfo(found);
    if (!connected) {
      if (fd >= 0) ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot connect to ", target_.address));
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval timeout{};
    timeout.tv_sec = static_cast<time_t>(target_.timeout_seconds);
    timeout.tv_usec = static_cast<suseconds_t>(
        std::fmod(target_.timeout_seconds, 1.0) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    return fd;
  }

  static bool SendAll(int fd, const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return true;
  }

  // Reads up to and including the blank line; body bytes read with it stay in `pending`.
  static absl::StatusOr<ResponseHead> ReadHead(int fd, std::string& pending) {
    char buffer[16 * 1024];
    size_t end;
    while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
      if (pending.size() > kMaxHeadBytes) return absl::InvalidArgumentError("head too long");
      const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) return absl::UnavailableError("connection ended in the response head");
      pending.append(buffer, static_cast<size_t>(n));
    }
    absl::StatusOr<ResponseHead> head = ParseResponseHead(pending.substr(0, end + 4));
    pending.erase(0, end + 4);
    return head;
  }

  // Consumes `length` body bytes, first from `pending`; keeps them in `body` unless null.
  static bool ReadBody(int fd, size_t length, std::string& pending, std::string* body) {
    const size_t buffered = std::min(length, pending.size());
    if (body != nullptr) {
      body->reserve(length);
      body->append(pending, 0, buffered);
    }
    pending.erase(0, buffered);
    length -= buffered;
    char buffer[64 * 1024];
    while (length > 0) {
      const ssize_t n = ::recv(fd, buffer, std::min(length, sizeof(buffer)), 0);
      if (n <= 0) return false;
      if (body != nullptr) body->append(buffer, static_cast<size_t>(n));
      length -= static_cast<size_t>(n);
    }
    return true;
  }

  const HttpTarget target_;
  std::vector<HttpRequest> requests_;  // their bodies moved into texts_
  const HttpAnswerCheck check_;
  std::vector<std::string> texts_;  // requests_[i] as sent: head and body
  std::string host_;
  std::string port_;
  // One per worker; entry w is only touched by worker w.
  std::vector<int> sockets_;
  std::vector<std::string> pending_;
  std::vector<std::string> bodies_;
  std::atomic<size_t> next_{0};
};

}  // namespace

absl::StatusOr<ResponseHead> ParseResponseHead(const std::string& head) {
  const std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  const std::vector<absl::string_view> status_line = absl::StrSplit(lines[0], ' ');
  ResponseHead parsed;
  if (status_line.size() < 2 || !absl::StartsWith(status_line[0], "HTTP/1.") ||
      !absl::SimpleAtoi(status_line[1], &parsed.status)) {
    return absl::InvalidArgumentError(absl::StrCat("bad HTTP status line '", lines[0], "'"));
  }
  bool has_length = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) continue;
    const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    const absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    parsed.headers[name] = std::string(value);
    if (name == "content-length") {
      has_length = absl::SimpleAtoi(value, &parsed.content_length);
    } else if (name == "connection") {
      parsed.close = absl::EqualsIgnoreCase(value, "close");
    } else if (name == "transfer-encoding") {
      return absl::InvalidArgumentError("chunked HTTP responses are not supported");
    }
  }
  if (!has_length) return absl::InvalidArgumentError("HTTP response without Content-Length");
  return parsed;
}

std::unique_ptr<Transport> MakeHttpRequestTransport(const HttpTarget& target,
                                                    std::vector<HttpRequest> requests,
                                                    HttpAnswerCheck check) {
  return std::make_unique<HttpTransport>(target, std::move(requests), std::move(check));
}

std::unique_ptr<Transport> MakeHttpTransport(const HttpTarget& target,
                                             std::vector<std::string> bodies) {
  std::vector<HttpRequest> requests;
  for (std::string& body : bodies) {
    requests.push_back({.path = target.path, .body = std::move(body)});
  }
  return MakeHttpRequestTransport(target, std::move(requests));
}

}  // namespace dinov3::bench
