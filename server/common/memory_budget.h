// MemoryBudget: the bytes that accepted requests may make the server hold, counted before they
// are allocated (SECURITY.md "Memory bounds"). A request reserves its whole estimate up front
// (request bytes, decoded pixels, model inputs and outputs, response bytes) and gives it back
// when its answer has been written; a reservation that does not fit now is refused at once,
// never waited for.
//
// Reservation is a move-only handle that returns its bytes when destroyed (or Release()d); it
// must not outlive the budget. Besides the non-blocking TryReserve for requests, Reserve waits
// for room (for worker threads sharing a small budget of transients, e.g. decoding), and
// ReservePermanently takes bytes for the budget's whole life (what does not grow with the number
// of requests), lowering request_capacity(); TryReserveHeld takes them for as long as its
// Reservation lives (a served model's fixed transients), lowering request_capacity() meanwhile.
// Thread-safe (one mutex); gRPC- and torch-free.
#ifndef DINOV3_SERVER_COMMON_MEMORY_BUDGET_H_
#define DINOV3_SERVER_COMMON_MEMORY_BUDGET_H_

#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace dinov3 {

class MemoryBudget {
 public:
  class Reservation {
   public:
    Reservation() = default;  // holds nothing
    Reservation(Reservation&& other) noexcept;
    Reservation& operator=(Reservation&& other) noexcept;
    Reservation(const Reservation&) = delete;
    Reservation& operator=(const Reservation&) = delete;
    ~Reservation() { Release(); }

    int64_t bytes() const { return bytes_; }
    // Returns the bytes above `bytes` (when held is larger) to the budget now.
    void ShrinkTo(int64_t bytes);
    // Returns the bytes to the budget now; a second call does nothing.
    void Release();

   private:
    friend class MemoryBudget;
    Reservation(MemoryBudget* budget, int64_t bytes, bool held = false)
        : budget_(budget), bytes_(bytes), held_(held) {}
    MemoryBudget* budget_ = nullptr;
    int64_t bytes_ = 0;
    bool held_ = false;  // TryReserveHeld: counted in request_capacity() too
  };

  explicit MemoryBudget(int64_t capacity_bytes) : capacity_(capacity_bytes) {}
  MemoryBudget(const MemoryBudget&) = delete;
  MemoryBudget& operator=(const MemoryBudget&) = delete;

  // A reservation of `bytes` (>= 0) when used() + bytes <= capacity(), else nullopt.
  std::optional<Reservation> TryReserve(int64_t bytes);
  // Waits until `bytes` fit, then reserves them. `bytes` must be <= request_capacity().
  Reservation Reserve(int64_t bytes);
  // Holds `bytes` for the budget's life; false (and nothing held) when they do not fit.
  bool ReservePermanently(int64_t bytes);
  // As TryReserve, and request_capacity() is lower by `bytes` until the reservation is gone.
  std::optional<Reservation> TryReserveHeld(int64_t bytes);

  int64_t capacity() const { return capacity_; }
  // capacity() less what is held permanently: the most one reservation can ever get.
  int64_t request_capacity() const;
  int64_t used() const;
  // The most bytes ever reserved at once.
  int64_t peak() const;

 private:
  void Return(int64_t bytes, bool held);

  const int64_t capacity_;
  mutable absl::Mutex mu_;
  int64_t used_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t permanent_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t peak_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_MEMORY_BUDGET_H_
