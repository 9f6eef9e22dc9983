// Closed-loop HTTP/1.1 load generator for the http_libraries benchmark (run.py builds and runs it).
//
//   loadgen --port P --conns N --seconds S [--idle K] [--slowloris L] [--watch-seconds W]
//
// Optionally first opens K idle keep-alive connections (each sends one POST, reads its answer if
// it comes, then stays open sending nothing) and L slowloris connections (a request head dripped
// one byte every 200 ms, never finished), waits 1 s, then runs N threads, each with one keep-alive
// connection sending POST /echo-size (32-byte JSON body) back to back for S seconds (the connect
// counts in the first request's latency). The slowloris connections keep dripping until W seconds
// after they were opened (default: as long as the load runs), to see whether the server's timeout
// closes them. Prints one JSON line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

const char kBody[] = "{\"image\": \"0123456789abcdefghij\"}";  // 32 bytes
std::string Request() {
  return std::string(
             "POST /echo-size HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nContent-Length: ") +
         std::to_string(sizeof(kBody) - 1) + "\r\n\r\n" + kBody;
}
const std::string kExpected = "{\"bytes\": " + std::to_string(sizeof(kBody) - 1) + "}";

int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

void SetReceiveTimeout(int fd, int ms) {
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

enum class Read { kOk, kBad, kClosed, kDeadline };

// Reads one answer (Content-Length framed). `close_after` is set for "Connection: close".
Read ReadResponse(int fd, std::string& buffer, Clock::time_point deadline, bool& close_after) {
  size_t head_end = std::string::npos;
  size_t need = 0;
  char chunk[4096];
  for (;;) {
    if (head_end == std::string::npos) {
      head_end = buffer.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::string head = buffer.substr(0, head_end);
        std::transform(head.begin(), head.end(), head.begin(), ::tolower);
        const size_t at = head.find("content-length:");
        if (at == std::string::npos) return Read::kBad;
        need = head_end + 4 + std::strtoul(head.c_str() + at + 15, nullptr, 10);
        close_after = head.find("connection: close") != std::string::npos;
        if (head.compare(0, 12, "http/1.1 200") != 0) {
          if (buffer.size() >= need) buffer.erase(0, need);
          return Read::kBad;
        }
      }
    }
    if (head_end != std::string::npos && buffer.size() >= need) {
      const bool good = buffer.compare(head_end + 4, need - head_end - 4, kExpected) == 0;
      buffer.erase(0, need);
      return good ? Read::kOk : Read::kBad;
    }
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (Clock::now() >= deadline) return Read::kDeadline;
    } else {
      return Read::kClosed;
    }
  }
}

struct WorkerResult {
  std::vector<double> latencies_ms;
  long errors = 0;      // bad answers, closed or refused connections
  long closed = 0;      // of which: the server closed the connection before answering
  long unanswered = 0;  // requests still waiting when the run ended
  std::vector<double> unanswered_ms;
  double first_ms = -1;  // the wait for the connection's first answer (connect included)
};

void Worker(int port, Clock::time_point end, WorkerResult* result) {
  const std::string request = Request();
  int fd = -1;
  std::string buffer;
  while (Clock::now() < end) {
    const Clock::time_point start = Clock::now();
    if (fd < 0) {
      fd = Connect(port);
      if (fd < 0) {
        ++result->errors;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      SetReceiveTimeout(fd, 100);
      buffer.clear();
    }
    bool close_after = false;
    Read read = SendAll(fd, request) ? ReadResponse(fd, buffer, end, close_after) : Read::kClosed;
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (result->first_ms < 0 && (read == Read::kOk || read == Read::kDeadline)) {
      result->first_ms = ms;
    }
    if (read == Read::kOk) {
      result->latencies_ms.push_back(ms);
    } else if (read == Read::kDeadline) {
      ++result->unanswered;
      result->unanswered_ms.push_back(ms);
    } else {
      ++result->errors;
      result->closed += read == Read::kClosed;
    }
    if (read != Read::kOk || close_after) {
      close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
}

double Percentile(std::vector<double>& sorted, double p) {
  if (sorted.empty()) return -1;
  const size_t index = std::min(sorted.size() - 1, static_cast<size_t>(p * sorted.size()));
  return sorted[index];
}

}  // namespace

int main(int argc, char** argv) {
  int port = 18080, conns = 1, idle = 0, slowloris = 0;
  double seconds = 5, watch_seconds = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--port")
      port = std::atoi(value);
    else if (flag == "--conns")
      conns = std::atoi(value);
    else if (flag == "--seconds")
      seconds = std::atof(value);
    else if (flag == "--idle")
      idle = std::atoi(value);
    else if (flag == "--slowloris")
      slowloris = std::atoi(value);
    else if (flag == "--watch-seconds")
      watch_seconds = std::atof(value);
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }

  // Idle keep-alive connections: one request each, then silence.
  struct Side {
    int fd;
    bool slow;
    bool answered = false;
    bool closed = false;
    double closed_at_s = -1;
    std::string sent;
  };
  std::vector<Side> sides;
  const std::string request = Request();
  const Clock::time_point opened = Clock::now();
  long idle_refused = 0;
  for (int i = 0; i < idle; ++i) {
    const int fd = Connect(port);
    if (fd < 0 || !SendAll(fd, request)) {
      ++idle_refused;
      if (fd >= 0) close(fd);
      continue;
    }
    sides.push_back({fd, false});
  }
  const std::string slow_head = "POST /echo-size HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  for (int i = 0; i < slowloris; ++i) {
    const int fd = Connect(port);
    if (fd < 0) continue;
    send(fd, slow_head.data(), 1, MSG_NOSIGNAL);
    sides.push_back({fd, true});
    sides.back().sent = slow_head.substr(0, 1);
  }
  const double sides_open_s = std::chrono::duration<double>(Clock::now() - opened).count();
  std::atomic<bool> stop_watch{false};
  std::mutex sides_mu;
  // Watches the side connections: answers and closes; drips the slowloris bytes every 200 ms.
  std::thread watcher([&] {
    std::vector<pollfd> fds;
    Clock::time_point next_drip = Clock::now();
    char chunk[4096];
    while (!stop_watch.load()) {
      std::unique_lock<std::mutex> lock(sides_mu);
      const double now_s = std::chrono::duration<double>(Clock::now() - opened).count();
      if (Clock::now() >= next_drip) {
        next_drip += std::chrono::milliseconds(200);
        for (Side& side : sides) {
          if (!side.slow || side.closed) continue;
          const size_t n = side.sent.size();
          const char byte = n < slow_head.size() ? slow_head[n] : 'a';
          if (send(side.fd, &byte, 1, MSG_NOSIGNAL) != 1) {
            side.closed = true;
            side.closed_at_s = now_s;
          } else {
            side.sent.push_back(byte);
          }
        }
      }
      fds.clear();
      for (const Side& side : sides) {
        fds.push_back({side.closed ? -1 : side.fd, POLLIN, 0});
      }
      lock.unlock();  // sides is not resized while the watcher runs; its fields need the lock
      if (poll(fds.data(), fds.size(), 20) <= 0) continue;
      lock.lock();
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const ssize_t n = recv(fds[i].fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n > 0) {
          sides[i].answered = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          sides[i].closed = true;
          sides[i].closed_at_s = now_s;
        }
      }
    }
  });
  if (!sides.empty() || idle_refused > 0) std::this_thread::sleep_for(std::chrono::seconds(1));

  const Clock::time_point begin = Clock::now();
  const Clock::time_point end = begin + std::chrono::microseconds(static_cast<long>(seconds * 1e6));
  std::vector<WorkerResult> results(conns);
  std::vector<std::thread> workers;
  for (int i = 0; i < conns; ++i) workers.emplace_back(Worker, port, end, &results[i]);
  for (std::thread& worker : workers) worker.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - begin).count();
  const Clock::time_point watch_end =
      opened + std::chrono::microseconds(static_cast<long>(watch_seconds * 1e6));
  while (Clock::now() < watch_end) {
    {
      std::lock_guard<std::mutex> lock(sides_mu);
      bool all_closed = true;
      for (const Side& side : sides) all_closed &= !side.slow || side.closed;
      if (all_closed) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop_watch.store(true);
  watcher.join();

  std::vector<double> latencies;
  long errors = 0, unanswered = 0;
  double longest_unanswered = 0;
  for (WorkerResult& r : results) {
    latencies.insert(latencies.end(), r.latencies_ms.begin(), r.latencies_ms.end());
    errors += r.errors;
    unanswered += r.unanswered;
    for (double ms : r.unanswered_ms) longest_unanswered = std::max(longest_unanswered, ms);
  }
  const long answered = static_cast<long>(latencies.size());
  long starved = 0;  // load connections that got no answer at all
  long closed = 0;
  double first_max = 0;  // the slowest first answer among the load connections
  for (const WorkerResult& r : results) {
    first_max = std::max(first_max, r.first_ms);
    starved += r.latencies_ms.empty();
    closed += r.closed;
  }
  // A request that never got its answer counts in the percentiles as at least its wait.
  std::vector<double> all = latencies;
  for (WorkerResult& r : results)
    all.insert(all.end(), r.unanswered_ms.begin(), r.unanswered_ms.end());
  std::sort(all.begin(), all.end());
  long idle_open = 0, idle_answered = 0, idle_closed = 0, slow_closed = 0;
  std::vector<double> slow_close_s;
  for (const Side& side : sides) {
    if (side.slow) {
      if (side.closed) {
        ++slow_closed;
        slow_close_s.push_back(side.closed_at_s);
      }
    } else {
      ++idle_open;
      idle_answered += side.answered;
      idle_closed += side.closed;
    }
    close(side.fd);
  }
  std::sort(slow_close_s.begin(), slow_close_s.end());
  std::printf(
      "{\"conns\": %d, \"seconds\": %.3f, \"answered\": %ld, \"rps\": %.1f, \"p50_ms\": %.3f, "
      "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"errors\": %ld, \"unanswered\": %ld, \"starved\": %ld, "
      "\"closed_by_server\": %ld, \"first_answer_max_ms\": %.1f, "
      "\"longest_unanswered_ms\": %.1f, \"idle_requested\": %d, \"idle_refused\": %ld, "
      "\"idle_open\": %ld, \"idle_answered\": %ld, \"idle_closed\": %ld, \"slowloris\": %d, "
      "\"slowloris_closed\": %ld, \"slowloris_median_close_s\": %.1f, "
      "\"sides_open_s\": %.1f, \"watched_s\": %.1f}\n",
      conns, elapsed, answered, answered / elapsed, Percentile(all, 0.50), Percentile(all, 0.99),
      all.empty() ? -1.0 : all.back(), errors, unanswered, starved, closed, first_max,
      longest_unanswered, idle, idle_refused, idle_open, idle_answered, idle_closed, slowloris,
      slow_closed, slow_close_s.empty() ? -1.0 : slow_close_s[slow_close_s.size() / 2],
      sides_open_s, std::chrono::duration<double>(Clock::now() - opened).count());
  return 0;
}
