#include "server/common/memory_budget.h"

#include <algorithm>
#include <utility>

namespace dinov3 {

MemoryBudget::Reservation::Reservation(Reservation&& other) noexcept
    : budget_(std::exchange(other.budget_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)),
      held_(other.held_) {}

MemoryBudget::Reservation& MemoryBudget::Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    held_ = other.held_;
  }
  return *this;
}

void MemoryBudget::Reservation::Release() {
  if (budget_ != nullptr) std::exchange(budget_, nullptr)->Return(bytes_, held_);
  bytes_ = 0;
}

void MemoryBudget::Reservation::ShrinkTo(int64_t bytes) {
  if (budget_ == nullptr || bytes >= bytes_) return;
  budget_->Return(bytes_ - std::max<int64_t>(bytes, 0), held_);
  bytes_ = std::max<int64_t>(bytes, 0);
}

std::optional<MemoryBudget::Reservation> MemoryBudget::TryReserve(int64_t bytes) {
  bytes = std::max<int64_t>(bytes, 0);
  absl::MutexLock lock(&mu_);
  if (bytes > capacity_ - used_) return std::nullopt;
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  return Reservation(this, bytes);
}

MemoryBudget::Reservation MemoryBudget::Reserve(int64_t bytes) {
  bytes = std::max<int64_t>(bytes, 0);
  absl::MutexLock lock(&mu_);
  const auto fits = [this, bytes]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return bytes <= capacity_ - used_;
  };
  mu_.Await(absl::Condition(&fits));
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  return Reservation(this, bytes);
}

bool MemoryBudget::ReservePermanently(int64_t bytes) {
  bytes = std::max<int64_t>(bytes, 0);
  absl::MutexLock lock(&mu_);
  if (bytes > capacity_ - used_) return false;
  used_ += bytes;
  permanent_ += bytes;
  peak_ = std::max(peak_, used_);
  return true;
}

std::optional<MemoryBudget::Reservation> MemoryBudget::TryReserveHeld(int64_t bytes) {
  bytes = std::max<int64_t>(bytes, 0);
  absl::MutexLock lock(&mu_);
  if (bytes > capacity_ - used_) return std::nullopt;
  used_ += bytes;
  permanent_ += bytes;
  peak_ = std::max(peak_, used_);
  return Reservation(this, bytes, /*held=*/true);
}

int64_t MemoryBudget::request_capacity() const {
  absl::MutexLock lock(&mu_);
  return capacity_ - permanent_;
}

int64_t MemoryBudget::used() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

int64_t MemoryBudget::peak() const {
  absl::MutexLock lock(&mu_);
  return peak_;
}

void MemoryBudget::Return(int64_t bytes, bool held) {
  absl::MutexLock lock(&mu_);
  used_ -= bytes;
  if (held) permanent_ -= bytes;
}

}  // namespace dinov3
