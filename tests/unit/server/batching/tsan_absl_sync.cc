// ThreadSanitizer builds only (DINOV3_SANITIZE=thread): makes the synchronization of the
// system's prebuilt, uninstrumented abseil visible to TSan.
//
// Debian's libabsl is not built with -fsanitize=thread, so TSan cannot see that absl::Mutex,
// CondVar and Notification order memory: every ABSL_GUARDED_BY member touched by two threads
// would be reported as a race. This file defines the public entry points of those classes in
// the test executable, which takes precedence over the shared library's definitions; each
// forwards to the library's function (dlsym RTLD_NEXT) and tells TSan what it means:
// __tsan_release before a critical section is left, __tsan_acquire after it is (re)entered,
// both around every Condition evaluated under the lock. Races on unguarded data are still
// reported; lock-order (deadlock) reports are not, as TSan sees no mutex here.
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !ABSL_OPTION_USE_INLINE_NAMESPACE
#error "tsan_absl_sync.cc expects abseil's inline namespace in its mangled names"
#endif

namespace {

#define DINOV3_STR2(x) #x
#define DINOV3_STR(x) DINOV3_STR2(x)

// The library's definition of a member function of absl::<inline namespace>:: whose mangled
// name ends with `tail` (e.g. "5Mutex4LockEv"); `is_const` for const member functions.
template <typename Fn>
Fn Real(const char* tail, bool is_const = false) {
  const std::string ns = DINOV3_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name =
      std::string(is_const ? "_ZNK" : "_ZN") + "4absl" + std::to_string(ns.size()) + ns + tail;
  void* symbol = dlsym(RTLD_NEXT, name.c_str());
  if (symbol == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found in abseil\n", name.c_str());
    std::abort();
  }
  return reinterpret_cast<Fn>(symbol);
}

// A Condition that acquires before and releases after evaluating the wrapped one; absl
// evaluates conditions with the mutex held, possibly on another thread (the unlocking one).
struct Wrapped {
  const absl::Condition* cond;
  void* sync;
};

bool EvalWrapped(Wrapped* w) {
  __tsan_acquire(w->sync);
  const bool result = w->cond->Eval();
  __tsan_release(w->sync);
  return result;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

#define DINOV3_PLAIN(Class, Method, tail)                  \
  void Class::Method() {                                   \
    static const auto real = Real<void (*)(Class*)>(tail); \
    real(this);                                            \
    __tsan_acquire(this);                                  \
  }
DINOV3_PLAIN(Mutex, Lock, "5Mutex4LockEv")
DINOV3_PLAIN(Mutex, ReaderLock, "5Mutex10ReaderLockEv")
#undef DINOV3_PLAIN

void Mutex::Unlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() {
  static const auto real = Real<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

bool Mutex::TryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() {
  static const auto real = Real<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

// Await*: held on entry and on return, released while waiting.
void Mutex::Await(const Condition& cond) {
  static const auto real =
      Real<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  Wrapped w{&cond, this};
  __tsan_release(this);
  real(this, Condition(&EvalWrapped, &w));
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  Wrapped w{&cond, this};
  __tsan_release(this);
  const bool result = real(this, Condition(&EvalWrapped, &w), timeout);
  __tsan_acquire(this);
  return result;
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static const auto real = Real<bool (*)(Mutex*, const Condition&, absl::Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  Wrapped w{&cond, this};
  __tsan_release(this);
  const bool result = real(this, Condition(&EvalWrapped, &w), deadline);
  __tsan_acquire(this);
  return result;
}

// *LockWhen*: not held on entry, held on return.
#define DINOV3_LOCK_WHEN(Method, tail)                                       \
  void Mutex::Method(const Condition& cond) {                                \
    static const auto real = Real<void (*)(Mutex*, const Condition&)>(tail); \
    Wrapped w{&cond, this};                                                  \
    real(this, Condition(&EvalWrapped, &w));                                 \
    __tsan_acquire(this);                                                    \
  }
DINOV3_LOCK_WHEN(LockWhen, "5Mutex8LockWhenERKNS0_9ConditionE")
DINOV3_LOCK_WHEN(ReaderLockWhen, "5Mutex14ReaderLockWhenERKNS0_9ConditionE")
#undef DINOV3_LOCK_WHEN

#define DINOV3_LOCK_WHEN_TIMED(Method, Arg, tail)                                 \
  bool Mutex::Method(const Condition& cond, Arg arg) {                            \
    static const auto real = Real<bool (*)(Mutex*, const Condition&, Arg)>(tail); \
    Wrapped w{&cond, this};                                                       \
    const bool result = real(this, Condition(&EvalWrapped, &w), arg);             \
    __tsan_acquire(this);                                                         \
    return result;                                                                \
  }
DINOV3_LOCK_WHEN_TIMED(LockWhenWithTimeout, absl::Duration,
                       "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE")
DINOV3_LOCK_WHEN_TIMED(LockWhenWithDeadline, absl::Time,
                       "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE")
DINOV3_LOCK_WHEN_TIMED(ReaderLockWhenWithTimeout, absl::Duration,
                       "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE")
DINOV3_LOCK_WHEN_TIMED(ReaderLockWhenWithDeadline, absl::Time,
                       "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE")
#undef DINOV3_LOCK_WHEN_TIMED

// CondVar::Wait*: `mu` held on entry and on return, released while waiting.
void CondVar::Wait(Mutex* mu) {
  static const auto real = Real<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool result = real(this, mu, timeout);
  __tsan_acquire(mu);
  return result;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto real = Real<bool (*)(CondVar*, Mutex*, absl::Time)>(
      "7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool result = real(this, mu, deadline);
  __tsan_acquire(mu);
  return result;
}

// Notification: Notify happens before every wait that sees it. (The inline HasBeenNotified()
// reads an atomic the library writes; TSan cannot pair those, so tests should wait instead.)
void Notification::Notify() {
  static const auto real = Real<void (*)(Notification*)>("12Notification6NotifyEv");
  __tsan_release(this);
  real(this);
}

void Notification::WaitForNotification() const {
  static const auto real =
      Real<void (*)(const Notification*)>("12Notification19WaitForNotificationEv", true);
  real(this);
  __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  static const auto real = Real<bool (*)(const Notification*, absl::Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", true);
  const bool notified = real(this, timeout);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  static const auto real = Real<bool (*)(const Notification*, absl::Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", true);
  const bool notified = real(this, deadline);
  if (notified) __tsan_acquire(const_cast<Notification*>(this));
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl

// Abseil's deadlock detector keeps a global lock graph guarded by an internal spin lock that
// this uninstrumented build hides from TSan, which then reports the graph updates as races.
// Lock ordering is not what these tests check: switch the detector off.
namespace {
const bool kDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();
}  // namespace
