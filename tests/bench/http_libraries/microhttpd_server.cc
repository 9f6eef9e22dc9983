// libmicrohttpd 0.9.75 (Debian 12 libmicrohttpd-dev): POST /echo-size answers {"bytes": N};
// keep-alive per HTTP/1.1 (MHD's default).
//   mode "epoll" (default, the asynchronous configuration): MHD_USE_INTERNAL_POLLING_THREAD |
//        MHD_USE_EPOLL, one MHD thread for every connection (MHD_OPTION_THREAD_POOL_SIZE would
//        add more epoll threads);
//   mode "tpc" (the alternative): MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD
//        (with poll(); EPOLL cannot be combined with thread-per-connection), a thread per
//        connection, idle ones included.
//   timeout: MHD_OPTION_CONNECTION_TIMEOUT 30 s, an *inactivity* timeout (reset by every byte);
//   cap:     MHD_OPTION_CONNECTION_LIMIT 1024;
//   stack:   MHD_OPTION_THREAD_STACK_SIZE, 0 = the pthread default (RLIMIT_STACK, 8 MiB here);
//            a third argument sets it in bytes.
//   MHD_ALLOW_SUSPEND_RESUME is on so that an asynchronous handler could MHD_suspend_connection()
//   and MHD_resume_connection() from another thread; this one answers at once.
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.h"

namespace {

struct Request {
  size_t bytes = 0;
};

MHD_Result Handle(void*, MHD_Connection* connection, const char* url, const char* method,
                  const char*, const char*, size_t* upload_data_size, void** con_cls) {
  if (*con_cls == nullptr) {  // the head has arrived; the body (if any) follows
    *con_cls = new Request;
    return MHD_YES;
  }
  auto* request = static_cast<Request*>(*con_cls);
  if (*upload_data_size != 0) {
    request->bytes += *upload_data_size;
    *upload_data_size = 0;
    return MHD_YES;
  }
  bench::RecordHandlerStack();
  const bool ours = std::strcmp(method, "POST") == 0 && std::strcmp(url, "/echo-size") == 0;
  const std::string body = ours ? bench::EchoSizeBody(request->bytes) : std::string("not found\n");
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          ours ? "application/json" : "text/plain");
  const MHD_Result result =
      MHD_queue_response(connection, ours ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, response);
  MHD_destroy_response(response);
  return result;
}

void Completed(void*, MHD_Connection*, void** con_cls, MHD_RequestTerminationCode) {
  delete static_cast<Request*>(*con_cls);
  *con_cls = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  bench::BlockStopSignals();
  const int port = bench::PortFromArgs(argc, argv);
  const bool thread_per_connection = argc > 2 && std::strcmp(argv[2], "tpc") == 0;
  const size_t stack_bytes = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 0;
  const unsigned int flags = thread_per_connection
                                 ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                       MHD_USE_POLL | MHD_USE_ERROR_LOG
                                 : MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                       MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  MHD_Daemon* daemon = MHD_start_daemon(
      flags, static_cast<uint16_t>(port), nullptr, nullptr, &Handle, nullptr, MHD_OPTION_SOCK_ADDR,
      &address, MHD_OPTION_CONNECTION_TIMEOUT, static_cast<unsigned int>(bench::kTimeoutSeconds),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(bench::kMaxConnections),
      MHD_OPTION_THREAD_STACK_SIZE, stack_bytes, MHD_OPTION_NOTIFY_COMPLETED, &Completed, nullptr,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
  if (daemon == nullptr) {
    std::fprintf(stderr, "MHD_start_daemon failed\n");
    return 1;
  }
  std::printf("microhttpd (%s) listening on 127.0.0.1:%d\n",
              thread_per_connection ? "thread per connection" : "epoll", port);
  std::fflush(stdout);
  bench::WaitForStopSignal();
  MHD_stop_daemon(daemon);
  return 0;
}
