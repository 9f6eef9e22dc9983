// RETURN_IF_ERROR / ASSIGN_OR_RETURN: the one definition of the status helpers (DESIGN.md §6).
#ifndef DINOV3_SERVER_COMMON_STATUS_MACROS_H_
#define DINOV3_SERVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function with the status of `expr` unless it is OK.
#define RETURN_IF_ERROR(expr)                            \
  do {                                                   \
    if (::absl::Status _status = (expr); !_status.ok()) { \
      return _status;                                    \
    }                                                    \
  } while (0)

#define DINOV3_CONCAT_INNER(a, b) a##b
#define DINOV3_CONCAT(a, b) DINOV3_CONCAT_INNER(a, b)

// `ASSIGN_OR_RETURN(auto x, StatusOrExpr());` declares/assigns x or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  DINOV3_ASSIGN_OR_RETURN_IMPL(DINOV3_CONCAT(_status_or_, __LINE__), lhs, expr)
#define DINOV3_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                                 \
  if (!statusor.ok()) return statusor.status();           \
  lhs = *std::move(statusor)

#endif  // DINOV3_SERVER_COMMON_STATUS_MACROS_H_
