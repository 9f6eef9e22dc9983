// Runs the real dinov3-server binary as a child process on a free loopback port, for the
// integration tests (DESIGN.md section 6: integration tests run the real binary on loopback).
//
// Start() forks and execs `<binary> --model=<model> --listen=127.0.0.1:<port> --device=cpu`,
// with stdout and stderr going to a log file, then polls grpc.health.v1 Check("") until the
// server answers SERVING. It fails (with the log's tail in the message) if the child exits
// first or the timeout passes. The child gets SIGKILL if the test process dies. Stop() sends
// SIGTERM, waits for the drain, then SIGKILL. Not thread-safe; one owner.
#ifndef DINOV3_TESTS_INTEGRATION_SERVER_PROCESS_H_
#define DINOV3_TESTS_INTEGRATION_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace dinov3::integration {

struct ServerProcessOptions {
  std::string binary;                    // path of dinov3-server
  std::string model;                     // --model
  std::vector<std::string> extra_flags;  // appended to the command line
  std::string log_path;                  // stdout + stderr of the server
  // Hang guards, not durations: many times what they bound on the CI's 2-core machine (load
  // and warm-up in seconds, a drain of at most 10 s), so a slower or loaded machine passes too.
  absl::Duration ready_timeout = absl::Seconds(180);
  absl::Duration stop_timeout = absl::Seconds(60);  // SIGTERM -> SIGKILL
};

class ServerProcess {
 public:
  // FailedPrecondition: binary or model missing. Unavailable: the server exited or did not
  // become SERVING in time (the message quotes the end of its log).
  static absl::StatusOr<std::unique_ptr<ServerProcess>> Start(const ServerProcessOptions& options);
  ~ServerProcess();  // Stop() unless already stopped

  // "127.0.0.1:<port>".
  const std::string& address() const { return address_; }
  const std::string& log_path() const { return options_.log_path; }

  // SIGTERM, then SIGKILL after stop_timeout. Returns the wait status as a readable string:
  // "exit 0" for a clean shutdown, "exit N", "signal N" or "killed after timeout".
  std::string Stop();

  // The last `max_bytes` of the log.
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  ServerProcess(ServerProcessOptions options, pid_t pid, std::string address)
      : options_(std::move(options)), pid_(pid), address_(std::move(address)) {}

  absl::Status WaitUntilServing();

  const ServerProcessOptions options_;
  pid_t pid_;  // -1 once reaped
  const std::string address_;
  std::string exit_description_;
};

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
absl::StatusOr<int> PickFreePort();

// Value of the environment variable `name`, or "" when unset.
std::string GetEnv(const char* name);

}  // namespace dinov3::integration

#endif  // DINOV3_TESTS_INTEGRATION_SERVER_PROCESS_H_
