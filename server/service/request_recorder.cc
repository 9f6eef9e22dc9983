#include "server/service/request_recorder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/common/logging.h"
#include "server/common/status_reason.h"
#include "server/service/call_context.h"
#include "server/service/proto_conversion.h"

namespace dinov3::service {

RequestRecorder::RequestRecorder(metrics::ServerMetrics* metrics, const char* method,
                                 std::string model, const grpc::CallbackServerContext& context,
                                 std::string request_id, int images)
    : RequestRecorder(metrics, method, std::move(model),
                      CallFacts{DeadlineOf(context), context.peer(),
                                [context = &context] { return context->IsCancelled(); }},
                      std::move(request_id), images) {}

RequestRecorder::RequestRecorder(metrics::ServerMetrics* metrics, const char* method,
                                 std::string model, CallFacts call, std::string request_id,
                                 int images)
    : metrics_(metrics),
      method_(method),
      model_(std::move(model)),
      is_cancelled_(std::move(call.is_cancelled)),
      deadline_(call.deadline),
      peer_(std::move(call.peer)),
      request_id_(std::move(request_id).substr(0, pipeline::kMaxIdBytes)),
      images_(images),
      start_(absl::Now()) {
  metrics_->RequestStarted();
}

RequestRecorder::RequestRecorder(RequestRecorder&& other) noexcept
    : metrics_(std::exchange(other.metrics_, nullptr)),
      method_(other.method_),
      model_(std::move(other.model_)),
      is_cancelled_(std::move(other.is_cancelled_)),
      deadline_(other.deadline_),
      peer_(std::move(other.peer_)),
      request_id_(std::move(other.request_id_)),
      images_(other.images_),
      start_(other.start_) {}

RequestRecorder::~RequestRecorder() {
  if (metrics_ != nullptr) Finish(absl::CancelledError("never answered"));
}

absl::Status RequestRecorder::AsDelivered(const absl::Status& status) const {
  // A client's own deadline expires a little before the server's copy of it (grpc-timeout is
  // measured from the send), and the client then resets the call: near the deadline, a
  // cancellation is the deadline's.
  constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(100);
  const bool cancelled = is_cancelled_ && is_cancelled_();
  if (!cancelled && !absl::IsCancelled(status)) return status;
  const std::string was = status.ok() ? "the answer" : absl::StrCat("'", status.message(), "'");
  if (absl::Now() + kDeadlineSlack >= deadline_) {
    if (absl::IsDeadlineExceeded(status)) return status;
    return absl::DeadlineExceededError(absl::StrCat("deadline passed before ", was));
  }
  if (absl::IsCancelled(status)) return status;
  return absl::CancelledError(absl::StrCat("client cancelled before ", was));
}

void RequestRecorder::Finish(const absl::Status& answer) {
  if (metrics_ == nullptr) return;
  const absl::Status status = AsDelivered(answer);
  metrics::ServerMetrics* metrics = std::exchange(metrics_, nullptr);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
  const std::string code = absl::StatusCodeToString(status.code());
  const std::string reason = ReasonOf(status);
  // Counted before it leaves the in-flight gauge: once that reads 0, every finished request is
  // in dinov3_requests_total (what a scrape-and-compare, as the fault tests do, relies on).
  metrics->RecordRequest(method_, model_, code, seconds, reason);
  metrics->RequestEnded();
  logging::LogAccess({.method = method_,
                      .model = model_,
                      .code = code,
                      .images = images_,
                      .seconds = seconds,
                      .peer = peer_,
                      .request_id = request_id_,
                      .reason = reason,
                      .error = std::string_view(status.message().data(), status.message().size())});
}

}  // namespace dinov3::service
