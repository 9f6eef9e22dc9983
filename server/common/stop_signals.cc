#include "server/common/stop_signals.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace dinov3 {

StopSignals::StopSignals() {
  sigemptyset(&signals_);
  sigaddset(&signals_, SIGTERM);
  sigaddset(&signals_, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
  std::thread([this] { WaitForSignal(); }).detach();
}

StopSignals::~StopSignals() = default;

void StopSignals::StartAccepting() {
  absl::MutexLock lock(&mu_);
  accepting_ = true;
}

int StopSignals::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* signal) { return *signal != 0; }, &signal_));
  return signal_;
}

void StopSignals::WaitForSignal() {
  int number = 0;
  sigwait(&signals_, &number);
  absl::MutexLock lock(&mu_);  // held while exiting: StartAccepting cannot slip in
  signal_ = number;
  if (accepting_) return;
  spdlog::info("received signal {} during start-up (nothing accepted yet): exiting", number);
  spdlog::default_logger()->flush();
  std::_Exit(0);
}

}  // namespace dinov3
