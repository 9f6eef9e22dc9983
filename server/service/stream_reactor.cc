#include "server/service/stream_reactor.h"

#include <deque>
#include <memory>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "server/service/call_context.h"

namespace dinov3::service {
namespace {

constexpr int kMaxInFlight = 32;

class StreamReactor : public grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse> {
 public:
  StreamReactor(grpc::CallbackServerContext* context, EmbedPipeline* pipeline)
      : context_(context), pipeline_(pipeline) {
    StartRead(&incoming_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // client half-closed, or the call is broken
      absl::MutexLock lock(&mu_);
      reads_done_ = true;
      MaybeFinish();
      return;
    }
    auto request = std::make_shared<v1::EmbedRequest>(std::move(incoming_));
    incoming_.Clear();
    {
      absl::MutexLock lock(&mu_);
      ++in_flight_;
    }
    pipeline_->Run(request, DeadlineOf(*context_), CancellationOf(context_),
                   [this, request](absl::Status status, v1::EmbedResponse response) {
                     OnAnswered(*request, std::move(status), std::move(response));
                   });
    absl::MutexLock lock(&mu_);
    if (in_flight_ < kMaxInFlight) {
      StartRead(&incoming_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    outgoing_.pop_front();
    if (!ok) {
      broken_ = true;
      outgoing_.clear();
    }
    WriteNextOrFinish();
  }

  void OnDone() override { delete this; }

 private:
  void OnAnswered(const v1::EmbedRequest& request, absl::Status status,
                  v1::EmbedResponse response) {
    if (!status.ok()) {
      response.Clear();
      response.set_request_id(request.request_id());
      response.mutable_error()->set_code(static_cast<int>(status.code()));
      response.mutable_error()->set_message(std::string(status.message()));
    }
    absl::MutexLock lock(&mu_);
    --in_flight_;
    if (!broken_) outgoing_.push_back(std::move(response));
    if (read_paused_ && !reads_done_) {
      read_paused_ = false;
      StartRead(&incoming_);
    }
    WriteNextOrFinish();
  }

  void WriteNextOrFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_) return;
    if (!outgoing_.empty() && !broken_) {
      writing_ = true;
      StartWrite(&outgoing_.front());
      return;
    }
    MaybeFinish();
  }

  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || !reads_done_ || in_flight_ > 0 || writing_ || !outgoing_.empty()) return;
    finished_ = true;
    Finish(broken_ ? grpc::Status(grpc::StatusCode::CANCELLED, "stream broken")
                   : grpc::Status::OK);
  }

  grpc::CallbackServerContext* const context_;
  EmbedPipeline* const pipeline_;
  v1::EmbedRequest incoming_;  // only touched by the read chain

  absl::Mutex mu_;
  std::deque<v1::EmbedResponse> outgoing_ ABSL_GUARDED_BY(mu_);  // front() is being written
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class RejectedStream : public grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse> {
 public:
  explicit RejectedStream(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* StartStreamCall(
    grpc::CallbackServerContext* context, EmbedPipeline* pipeline,
    const absl::Status& unavailable) {
  if (pipeline == nullptr) return new RejectedStream(unavailable);
  return new StreamReactor(context, pipeline);
}

}  // namespace dinov3::service
