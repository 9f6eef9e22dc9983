#include "server/service/request_recorder.h"

#include <utility>

#include "absl/time/clock.h"
#include "server/common/logging.h"
#include "server/common/status_reason.h"

namespace dinov3::service {

RequestRecorder::RequestRecorder(metrics::ServerMetrics* metrics, const char* method,
                                 const grpc::CallbackServerContext& context,
                                 std::string request_id, int images)
    : metrics_(metrics),
      method_(method),
      peer_(context.peer()),
      request_id_(std::move(request_id)),
      images_(images),
      start_(absl::Now()) {
  metrics_->RequestStarted();
}

RequestRecorder::RequestRecorder(RequestRecorder&& other) noexcept
    : metrics_(std::exchange(other.metrics_, nullptr)),
      method_(other.method_),
      peer_(std::move(other.peer_)),
      request_id_(std::move(other.request_id_)),
      images_(other.images_),
      start_(other.start_) {}

RequestRecorder::~RequestRecorder() {
  if (metrics_ != nullptr) Finish(absl::CancelledError("never answered"));
}

void RequestRecorder::Finish(const absl::Status& status) {
  if (metrics_ == nullptr) return;
  metrics::ServerMetrics* metrics = std::exchange(metrics_, nullptr);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start_);
  const std::string code = absl::StatusCodeToString(status.code());
  const std::string reason = ReasonOf(status);
  metrics->RequestEnded();
  metrics->RecordRequest(method_, code, seconds, reason);
  logging::LogAccess({.method = method_,
                      .code = code,
                      .images = images_,
                      .seconds = seconds,
                      .peer = peer_,
                      .request_id = request_id_,
                      .reason = reason,
                      .error = std::string_view(status.message().data(),
                                                status.message().size())});
}

}  // namespace dinov3::service
