// Why a request was refused, as a short fixed name (the `reason` label of
// dinov3_rejected_total and the access log). Where an error is made, WithReason attaches the
// specific reason to the status as a payload (it never reaches the client); ReasonOf reads it
// back, or derives one from the code. Header-only, gRPC- and torch-free.
#ifndef DINOV3_SERVER_COMMON_STATUS_REASON_H_
#define DINOV3_SERVER_COMMON_STATUS_REASON_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace dinov3 {

inline constexpr char kReasonQueueFull[] = "queue_full";        // RESOURCE_EXHAUSTED
inline constexpr char kReasonTooLarge[] = "too_large";          // a size limit of the request
inline constexpr char kReasonInvalidImage[] = "invalid_image";  // undecodable or refused image
inline constexpr char kReasonInvalidRequest[] = "invalid_request";  // any other bad field
inline constexpr char kReasonDeadline[] = "deadline";
inline constexpr char kReasonCancelled[] = "cancelled";
inline constexpr char kReasonUnavailable[] = "unavailable";  // loading or draining
inline constexpr char kReasonUnauthenticated[] = "unauthenticated";
inline constexpr char kReasonOutOfMemory[] = "out_of_memory";  // device or host, for one input
inline constexpr char kReasonMemoryBudget[] = "memory_budget";  // RESOURCE_EXHAUSTED: budget full

inline constexpr const char* kAllReasons[] = {
    kReasonQueueFull, kReasonTooLarge,   kReasonInvalidImage, kReasonInvalidRequest,
    kReasonDeadline,  kReasonCancelled,  kReasonUnavailable,  kReasonUnauthenticated,
    kReasonOutOfMemory, kReasonMemoryBudget};

inline constexpr char kReasonPayloadUrl[] = "type.dinov3/reason";

// `status` with `reason` attached, unless it is OK or already has a reason.
inline absl::Status WithReason(absl::Status status, std::string_view reason) {
  if (!status.ok() && !status.GetPayload(kReasonPayloadUrl).has_value()) {
    status.SetPayload(kReasonPayloadUrl, absl::Cord(absl::string_view(reason.data(), reason.size())));
  }
  return status;
}

// The attached reason, else the one its code implies; "" for OK and for server errors
// (INTERNAL, UNKNOWN, ...), which are failures, not rejections.
inline std::string ReasonOf(const absl::Status& status) {
  if (auto payload = status.GetPayload(kReasonPayloadUrl)) return std::string(*payload);
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return kReasonInvalidRequest;
    case absl::StatusCode::kResourceExhausted:
      return kReasonQueueFull;
    case absl::StatusCode::kDeadlineExceeded:
      return kReasonDeadline;
    case absl::StatusCode::kCancelled:
      return kReasonCancelled;
    case absl::StatusCode::kUnavailable:
      return kReasonUnavailable;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kReasonUnauthenticated;
    default:
      return "";
  }
}

// The error of image `index` of a request: "image[index]: <message>", same code; its reason is
// kept, and an INVALID_ARGUMENT without one is a bad image (kReasonInvalidImage).
inline absl::Status ImageError(int index, const absl::Status& status) {
  std::string reason = ReasonOf(status);
  if (status.code() == absl::StatusCode::kInvalidArgument &&
      !status.GetPayload(kReasonPayloadUrl).has_value()) {
    reason = kReasonInvalidImage;
  }
  return WithReason(
      absl::Status(status.code(), absl::StrCat("image[", index, "]: ", status.message())), reason);
}

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_STATUS_REASON_H_
