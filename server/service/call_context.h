// Helpers that turn a gRPC callback context into what the pipeline needs: the deadline as
// absl::Time and a cheap, thread-safe cancellation check. The context must outlive every use
// of the returned function (the pipeline guarantees that: it answers only after all its tasks
// finished). And CallEnvironment, what every call handler shares.
#ifndef DINOV3_SERVER_SERVICE_CALL_CONTEXT_H_
#define DINOV3_SERVER_SERVICE_CALL_CONTEXT_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/metrics/server_metrics.h"
#include "server/service/call_watchdog.h"

namespace dinov3::registry {
class ModelRegistry;
}  // namespace dinov3::registry

namespace dinov3::service {

inline absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max() - std::chrono::hours(24 * 365)) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

// The deadline for a call's work: the client's, or `max_call` from now when that is earlier
// (server.max_call_seconds; also when the client set none).
inline absl::Time WorkDeadline(const grpc::CallbackServerContext& context,
                               absl::Duration max_call) {
  return std::min(DeadlineOf(context), absl::Now() + max_call);
}

// How long after its work deadline a call whose answer is still not delivered is cancelled.
inline constexpr absl::Duration kUndeliveredGrace = absl::Seconds(1);

// Shared by the calls of one service; everything outlives them.
struct CallEnvironment {
  metrics::ServerMetrics* metrics = nullptr;
  CallWatchdog* watchdog = nullptr;
  const registry::ModelRegistry* models = nullptr;  // the served models, looked up per request
  absl::Duration max_call = absl::Seconds(300);     // server.max_call_seconds: WorkDeadline
  // Bytes one StreamEmbed stream may hold in accepted requests and unread answers
  // (limits.max_stream_buffered_bytes); reading pauses beyond it.
  int64_t max_stream_buffered_bytes = int64_t{256} << 20;
};

inline std::function<bool()> CancellationOf(grpc::CallbackServerContext* context) {
  return [context] { return context->IsCancelled(); };
}

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_CALL_CONTEXT_H_
