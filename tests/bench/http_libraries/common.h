// Shared by the three benchmark servers (tests/bench/http_libraries/): the answer body, the
// stack size of the thread a handler runs on, and a clean stop on SIGTERM/SIGINT.
#ifndef TESTS_BENCH_HTTP_LIBRARIES_COMMON_H_
#define TESTS_BENCH_HTTP_LIBRARIES_COMMON_H_

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace bench {

constexpr int kTimeoutSeconds = 30;    // read (and idle) timeout
constexpr int kMaxConnections = 1024;  // where the library has a cap

inline std::string EchoSizeBody(size_t bytes) {
  return "{\"bytes\": " + std::to_string(bytes) + "}";
}

// The stack size of the first thread that ran a handler (pthread_getattr_np), printed at exit.
inline std::atomic<long>& HandlerStackBytes() {
  static std::atomic<long> bytes{0};
  return bytes;
}
inline void RecordHandlerStack() {
  if (HandlerStackBytes().load(std::memory_order_relaxed) != 0) return;
  pthread_attr_t attr;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstacksize(&attr, &size);
    pthread_attr_destroy(&attr);
  }
  HandlerStackBytes().store(static_cast<long>(size));
}

// Call first in main: blocks SIGTERM/SIGINT in every thread started afterwards, so that
// WaitForStopSignal() (on the main thread) is the only one to see them.
inline void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}
inline void WaitForStopSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  std::fprintf(stderr, "handler_thread_stack_bytes=%ld\n", HandlerStackBytes().load());
}

inline int PortFromArgs(int argc, char** argv) { return argc > 1 ? std::atoi(argv[1]) : 18080; }

}  // namespace bench

#endif  // TESTS_BENCH_HTTP_LIBRARIES_COMMON_H_
