// cpp-httplib 0.11.4 (Debian 12 libcpp-httplib-dev, built as libcpp-httplib.so): POST
// /echo-size answers {"bytes": N}; keep-alive.
//   threads: the default task queue, a ThreadPool of CPPHTTPLIB_THREAD_POOL_COUNT =
//            max(8, hardware_concurrency - 1) std::threads (fixed when the .so was built), plus
//            the accept loop on the thread that calls listen(). A connection holds a pool
//            thread from its first byte to its close, idle keep-alive waits included; the job
//            queue in front of the pool is unbounded;
//   timeout: set_read_timeout(30 s), per recv(), so a client dripping bytes is never closed;
//            set_keep_alive_timeout(30 s) for the wait between requests;
//   keep-alive: set_keep_alive_max_count raised from the default 5 requests per connection;
//   nodelay: set_tcp_nodelay(true) (the default is off);
//   cap:     none (0.11.4 has no connection limit and no queue limit);
//   stack:   std::thread, no option: the pthread default (RLIMIT_STACK, 8 MiB here).
#include <httplib.h>

#include <cstdio>
#include <thread>

#include "common.h"

int main(int argc, char** argv) {
  bench::BlockStopSignals();
  const int port = bench::PortFromArgs(argc, argv);
  httplib::Server server;
  server.set_read_timeout(bench::kTimeoutSeconds, 0);
  server.set_write_timeout(bench::kTimeoutSeconds, 0);
  server.set_keep_alive_timeout(bench::kTimeoutSeconds);
  server.set_keep_alive_max_count(1000000000);
  server.set_tcp_nodelay(true);
  server.Post("/echo-size", [](const httplib::Request& request, httplib::Response& response) {
    bench::RecordHandlerStack();
    // An "asynchronous" handler here can only block this pool thread until the answer is ready.
    response.set_content(bench::EchoSizeBody(request.body.size()), "application/json");
  });
  if (!server.bind_to_port("127.0.0.1", port)) {
    std::fprintf(stderr, "cannot bind 127.0.0.1:%d\n", port);
    return 1;
  }
  std::thread thread([&server] { server.listen_after_bind(); });
  std::printf("cpp-httplib listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  bench::WaitForStopSignal();
  server.stop();
  thread.join();
  return 0;
}
