// CallWatchdog: the server-side time limit of calls (server.max_call_seconds). A watched call
// whose deadline passes is cancelled (grpc::ServerContextBase::TryCancel, logged): the client
// gets CANCELLED, the call's reactor finishes and releases what it held, so a client that never
// reads an answer (whatever deadline it set) cannot hold the answer's memory for long.
//
// One thread sleeps until the earliest deadline; it is woken only by an earlier one. Watch() returns a Guard; the context is never
// touched after its Guard is destroyed (or reset), so a reactor destroys its Guard in OnDone
// before it is deleted. Thread-safe.
#ifndef DINOV3_SERVER_SERVICE_CALL_WATCHDOG_H_
#define DINOV3_SERVER_SERVICE_CALL_WATCHDOG_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace dinov3::service {

class CallWatchdog {
 public:
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& other) noexcept;
    Guard& operator=(Guard&& other) noexcept;
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { Reset(); }

    // Moves the call's deadline (absl::InfiniteFuture() = none for now).
    void SetDeadline(absl::Time deadline);
    // Stops watching: the context is not touched from now on.
    void Reset();

   private:
    friend class CallWatchdog;
    Guard(CallWatchdog* watchdog, uint64_t id) : watchdog_(watchdog), id_(id) {}
    CallWatchdog* watchdog_ = nullptr;
    uint64_t id_ = 0;
  };

  CallWatchdog();
  ~CallWatchdog();  // every Guard must be gone
  CallWatchdog(const CallWatchdog&) = delete;
  CallWatchdog& operator=(const CallWatchdog&) = delete;

  // `context` must stay valid while the Guard lives. `what` (a string literal) names the call
  // in the log line.
  Guard Watch(grpc::ServerContextBase* context, absl::Time deadline, const char* what);

 private:
  struct Entry {
    grpc::ServerContextBase* context;
    absl::Time deadline;
    const char* what;
    bool cancelling = false;
  };

  void SetDeadline(uint64_t id, absl::Time deadline);
  void Unwatch(uint64_t id);
  void Run();
  bool Wake() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Time EarliestDeadline() const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<uint64_t, Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;  // bumped by a deadline before wake_at_
  absl::Time wake_at_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();  // the thread sleeps until
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_CALL_WATCHDOG_H_
