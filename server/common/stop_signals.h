// StopSignals: SIGTERM and SIGINT, waited for on a thread of its own from before the model
// loads, so that a pod deleted during start-up does not wait for the load and warm-up.
//
// The constructor blocks the signals in the calling thread (call it in main before any other
// thread starts, so every thread inherits the mask) and starts the waiting thread. Until
// StartAccepting() is called, a signal ends the process at once with exit status 0 after
// logging it: nothing has been accepted yet, so there is nothing to drain. After it, the signal
// is handed to Wait(), and the caller drains. Thread-safe; one instance per process.
#ifndef DINOV3_SERVER_COMMON_STOP_SIGNALS_H_
#define DINOV3_SERVER_COMMON_STOP_SIGNALS_H_

#include <signal.h>

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dinov3 {

class StopSignals {
 public:
  StopSignals();
  // Leaves the waiting thread detached, using the object: create it with new, never destroy it.
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // From now on signals are handed to Wait() (a signal before this has ended the process).
  void StartAccepting();
  // Blocks until a stop signal came after StartAccepting; returns its number.
  int Wait();

 private:
  void WaitForSignal();

  sigset_t signals_;
  absl::Mutex mu_;
  bool accepting_ ABSL_GUARDED_BY(mu_) = false;
  int signal_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_STOP_SIGNALS_H_
