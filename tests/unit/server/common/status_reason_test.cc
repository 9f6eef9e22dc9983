// WithReason / ReasonOf: an attached reason wins, the first one sticks, and codes map to the
// documented defaults.
#include "server/common/status_reason.h"

#include <gtest/gtest.h>

namespace dinov3 {
namespace {

TEST(StatusReasonTest, AttachedReasonWinsAndTheFirstSticks) {
  absl::Status s = WithReason(absl::InvalidArgumentError("big"), kReasonTooLarge);
  EXPECT_EQ(ReasonOf(s), "too_large");
  EXPECT_EQ(ReasonOf(WithReason(s, kReasonInvalidImage)), "too_large");
  EXPECT_EQ(s.message(), "big");  // the client's message is unchanged
}

TEST(StatusReasonTest, OkHasNoReasonAndGetsNone) {
  EXPECT_EQ(ReasonOf(absl::OkStatus()), "");
  EXPECT_TRUE(WithReason(absl::OkStatus(), kReasonTooLarge).ok());
  EXPECT_EQ(ReasonOf(WithReason(absl::OkStatus(), kReasonTooLarge)), "");
}

TEST(StatusReasonTest, CodesMapToDefaults) {
  EXPECT_EQ(ReasonOf(absl::InvalidArgumentError("")), "invalid_request");
  EXPECT_EQ(ReasonOf(absl::ResourceExhaustedError("")), "queue_full");
  EXPECT_EQ(ReasonOf(absl::DeadlineExceededError("")), "deadline");
  EXPECT_EQ(ReasonOf(absl::CancelledError("")), "cancelled");
  EXPECT_EQ(ReasonOf(absl::UnavailableError("")), "unavailable");
  EXPECT_EQ(ReasonOf(absl::UnauthenticatedError("")), "unauthenticated");
  EXPECT_EQ(ReasonOf(absl::InternalError("")), "");  // a failure, not a rejection
}

}  // namespace
}  // namespace dinov3
