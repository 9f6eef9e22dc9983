// Child-process handling of the integration tests; see server_process.h.
#include "tests/integration/server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dinov3::integration {
namespace {

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("signal ", WTERMSIG(status));
  return absl::StrCat("wait status ", status);
}

bool FileExists(const std::string& path) {
  struct stat info;
  return !path.empty() && ::stat(path.c_str(), &info) == 0;
}

// Forks and execs argv with stdout/stderr on `log_fd`. Returns the child's pid or -1.
pid_t Spawn(const std::vector<std::string>& args, int log_fd) {
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls until exec.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  ::dup2(log_fd, STDOUT_FILENO);
  ::dup2(log_fd, STDERR_FILENO);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

}  // namespace

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

absl::StatusOr<int> PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string error = std::strerror(errno);
    ::close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", error));
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

absl::StatusOr<std::unique_ptr<ServerProcess>> ServerProcess::Start(
    const ServerProcessOptions& options) {
  if (!FileExists(options.binary)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "server binary '", options.binary, "' not found (set DINOV3_SERVER_BIN; run via ctest)"));
  }
  if (!FileExists(options.model)) {
    return absl::FailedPreconditionError(
        absl::StrCat("model '", options.model,
                     "' not found (set DINOV3_TEST_MODEL; ctest runs the model_runtime_fixtures "
                     "fixture that exports it)"));
  }
  absl::StatusOr<int> port = PickFreePort();
  if (!port.ok()) return port.status();
  const std::string address = absl::StrCat("127.0.0.1:", *port);
  std::vector<std::string> args = {options.binary, absl::StrCat("--model=", options.model),
                                   absl::StrCat("--listen=", address), "--device=cpu",
                                   // any free port: tests run in parallel (a later flag wins)
                                   "--metrics_listen=127.0.0.1:0", "--http_listen=127.0.0.1:0"};
  args.insert(args.end(), options.extra_flags.begin(), options.extra_flags.end());

  const int log_fd =
      ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot open log ", options.log_path, ": ", std::strerror(errno)));
  }
  const pid_t pid = Spawn(args, log_fd);
  ::close(log_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  std::unique_ptr<ServerProcess> process(new ServerProcess(options, pid, address));
  if (absl::Status status = process->WaitUntilServing(); !status.ok()) {
    process->Stop();
    return status;
  }
  return process;
}

absl::Status ServerProcess::WaitUntilServing() {
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  auto stub = grpc::health::v1::Health::NewStub(channel);
  const absl::Time deadline = absl::Now() + options_.ready_timeout;
  std::string last_answer = "no answer";
  while (absl::Now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_description_ = DescribeWaitStatus(status);
      return absl::UnavailableError(absl::StrCat("dinov3-server exited (", exit_description_,
                                                 ") before it was SERVING; its log ",
                                                 options_.log_path, " ends with:\n", LogTail()));
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status rpc = stub->Check(&context, request, &response);
    if (rpc.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    last_answer = rpc.ok()
                      ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
                      : absl::StrCat("RPC error ", rpc.error_code(), ": ", rpc.error_message());
    absl::SleepFor(absl::Milliseconds(100));
  }
  return absl::UnavailableError(absl::StrCat("dinov3-server on ", address_, " not SERVING after ",
                                             absl::FormatDuration(options_.ready_timeout),
                                             " (last health answer: ", last_answer, "); its log ",
                                             options_.log_path, " ends with:\n", LogTail()));
}

std::string ServerProcess::Stop() {
  if (pid_ < 0) return exit_description_;
  ::kill(pid_, SIGTERM);
  const absl::Time deadline = absl::Now() + options_.stop_timeout;
  int status = 0;
  while (absl::Now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_description_ = DescribeWaitStatus(status);
      return exit_description_;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  exit_description_ = "killed after timeout";
  return exit_description_;
}

ServerProcess::~ServerProcess() { Stop(); }

std::string ServerProcess::LogTail(size_t max_bytes) const {
  std::ifstream in(options_.log_path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  return text.size() <= max_bytes ? text : text.substr(text.size() - max_bytes);
}

}  // namespace dinov3::integration
