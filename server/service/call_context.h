// Helpers that turn a gRPC callback context into what the pipeline needs: the deadline as
// absl::Time and a cheap, thread-safe cancellation check. The context must outlive every use
// of the returned function (the pipeline guarantees that: it answers only after all its tasks
// finished).
#ifndef DINOV3_SERVER_SERVICE_CALL_CONTEXT_H_
#define DINOV3_SERVER_SERVICE_CALL_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>

#include "absl/time/time.h"

namespace dinov3::service {

inline absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

inline std::function<bool()> CancellationOf(grpc::CallbackServerContext* context) {
  return [context] { return context->IsCancelled(); };
}

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_CALL_CONTEXT_H_
