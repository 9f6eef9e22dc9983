// Accounts for one request from the moment the service accepts it until it is answered:
// dinov3_inflight_requests counts it while open; Finish records dinov3_requests_total
// {method,code,model}, dinov3_request_duration_seconds{method,model}, dinov3_rejected_total
// {reason,model} (see
// server/common/status_reason.h) and writes the access-log line. A request is an Embed,
// EmbedDense or GetModelInfo call, or one message of a StreamEmbed stream.
// Finish once; a recorder destroyed unfinished records CANCELLED ("never answered"), so the
// in-flight gauge cannot drift. What is recorded is what the client gets: once gRPC has
// cancelled the call (the client cancelled, or its deadline passed), the status passed to
// Finish never reaches the client, and CANCELLED or DEADLINE_EXCEEDED is recorded instead; a
// cancellation within 100 ms of the deadline counts as the deadline's (the client's copy of
// the deadline expires first).
// Movable, not copyable; not thread-safe (one owner at a time). The context (or what
// CallFacts::is_cancelled reads) must outlive it.
#ifndef DINOV3_SERVER_SERVICE_REQUEST_RECORDER_H_
#define DINOV3_SERVER_SERVICE_REQUEST_RECORDER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/metrics/server_metrics.h"

namespace dinov3::service {

// What the recorder needs to know of a call, whatever its protocol.
struct CallFacts {
  absl::Time deadline = absl::InfiniteFuture();  // the client's
  std::string peer;
  std::function<bool()> is_cancelled;  // true once the client is gone; thread-safe
};

class RequestRecorder {
 public:
  // `metrics` must outlive the recorder; `method` is a string literal (the RPC or endpoint
  // name), `model` the model label (ModelRegistry::Label).
  RequestRecorder(metrics::ServerMetrics* metrics, const char* method, std::string model,
                  CallFacts call, std::string request_id, int images);
  // A gRPC call's facts from its context.
  RequestRecorder(metrics::ServerMetrics* metrics, const char* method, std::string model,
                  const grpc::CallbackServerContext& context, std::string request_id, int images);
  RequestRecorder(RequestRecorder&& other) noexcept;
  RequestRecorder& operator=(RequestRecorder&&) = delete;
  RequestRecorder(const RequestRecorder&) = delete;
  ~RequestRecorder();

  void Finish(const absl::Status& status);

 private:
  // `status`, or what the client gets instead when the call is already cancelled.
  absl::Status AsDelivered(const absl::Status& status) const;

  metrics::ServerMetrics* metrics_;  // null once finished or moved from
  const char* method_;
  std::string model_;
  std::function<bool()> is_cancelled_;
  absl::Time deadline_;
  std::string peer_;
  std::string request_id_;
  int images_;
  absl::Time start_;
};

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_REQUEST_RECORDER_H_
