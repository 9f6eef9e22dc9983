#include "server/common/memory_budget.h"

#include <gtest/gtest.h>

#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"

namespace dinov3 {
namespace {

TEST(MemoryBudgetTest, ReservesUpToCapacityAndRefusesBeyond) {
  MemoryBudget budget(100);
  std::optional<MemoryBudget::Reservation> a = budget.TryReserve(60);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->bytes(), 60);
  EXPECT_EQ(budget.used(), 60);
  EXPECT_FALSE(budget.TryReserve(41).has_value());
  EXPECT_EQ(budget.used(), 60);  // a refusal holds nothing
  std::optional<MemoryBudget::Reservation> b = budget.TryReserve(40);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(budget.used(), 100);
  EXPECT_FALSE(budget.TryReserve(1).has_value());
  EXPECT_TRUE(budget.TryReserve(0).has_value());
}

TEST(MemoryBudgetTest, DestructionAndReleaseReturnTheBytesOnce) {
  MemoryBudget budget(100);
  {
    std::optional<MemoryBudget::Reservation> r = budget.TryReserve(70);
    ASSERT_TRUE(r.has_value());
    r->Release();
    EXPECT_EQ(budget.used(), 0);
    r->Release();
    EXPECT_EQ(budget.used(), 0);
  }
  {
    std::optional<MemoryBudget::Reservation> r = budget.TryReserve(70);
    EXPECT_EQ(budget.used(), 70);
  }
  EXPECT_EQ(budget.used(), 0);
  EXPECT_EQ(budget.peak(), 70);
}

TEST(MemoryBudgetTest, MovesTransferOwnershipWithoutDoubleRelease) {
  MemoryBudget budget(100);
  MemoryBudget::Reservation held;
  EXPECT_EQ(held.bytes(), 0);
  {
    std::optional<MemoryBudget::Reservation> r = budget.TryReserve(30);
    held = std::move(*r);
  }
  EXPECT_EQ(budget.used(), 30);
  MemoryBudget::Reservation other = std::move(held);
  EXPECT_EQ(other.bytes(), 30);
  other = MemoryBudget::Reservation();  // move-assigning releases what it held
  EXPECT_EQ(budget.used(), 0);
}

TEST(MemoryBudgetTest, ConcurrentReservationsNeverExceedCapacity) {
  MemoryBudget budget(1000);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&budget] {
      for (int i = 0; i < 2000; ++i) {
        std::optional<MemoryBudget::Reservation> r = budget.TryReserve(300);
        if (r) EXPECT_LE(budget.used(), 1000);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(budget.used(), 0);
  EXPECT_LE(budget.peak(), 900);
}

TEST(MemoryBudgetTest, ShrinkToReturnsTheDifference) {
  MemoryBudget budget(100);
  std::optional<MemoryBudget::Reservation> r = budget.TryReserve(80);
  r->ShrinkTo(30);
  EXPECT_EQ(r->bytes(), 30);
  EXPECT_EQ(budget.used(), 30);
  r->ShrinkTo(50);  // never grows
  EXPECT_EQ(budget.used(), 30);
  r.reset();
  EXPECT_EQ(budget.used(), 0);
}

TEST(MemoryBudgetTest, PermanentBytesLowerTheRequestCapacity) {
  MemoryBudget budget(100);
  EXPECT_FALSE(budget.ReservePermanently(101));
  EXPECT_EQ(budget.used(), 0);
  EXPECT_TRUE(budget.ReservePermanently(40));
  EXPECT_EQ(budget.request_capacity(), 60);
  EXPECT_EQ(budget.used(), 40);
  EXPECT_FALSE(budget.TryReserve(61).has_value());
  EXPECT_TRUE(budget.TryReserve(60).has_value());
}

TEST(MemoryBudgetTest, HeldBytesLowerTheRequestCapacityUntilReleased) {
  MemoryBudget budget(100);
  EXPECT_FALSE(budget.TryReserveHeld(101).has_value());
  std::optional<MemoryBudget::Reservation> held = budget.TryReserveHeld(30);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(budget.request_capacity(), 70);
  EXPECT_EQ(budget.used(), 30);
  MemoryBudget::Reservation moved = *std::move(held);  // a move keeps it held
  held.reset();
  EXPECT_EQ(budget.request_capacity(), 70);
  moved.ShrinkTo(10);
  EXPECT_EQ(budget.request_capacity(), 90);
  EXPECT_EQ(budget.used(), 10);
  moved.Release();
  EXPECT_EQ(budget.request_capacity(), 100);
  EXPECT_EQ(budget.used(), 0);
}

TEST(MemoryBudgetTest, ReserveWaitsUntilTheBytesAreReturned) {
  MemoryBudget budget(100);
  std::optional<MemoryBudget::Reservation> held = budget.TryReserve(70);
  absl::Notification reserved;
  std::thread waiter([&] {
    MemoryBudget::Reservation r = budget.Reserve(50);
    EXPECT_EQ(r.bytes(), 50);
    reserved.Notify();
  });
  // Ordering, not timing: the waiter cannot get its bytes while 70 of 100 are held.
  EXPECT_FALSE(reserved.HasBeenNotified());
  EXPECT_LE(budget.used(), 100);
  held.reset();
  reserved.WaitForNotification();
  waiter.join();
  EXPECT_EQ(budget.used(), 0);
}

}  // namespace
}  // namespace dinov3
