#include "server/service/stream_reactor.h"

#include <deque>
#include <memory>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/pipeline/request_footprint.h"
#include "server/registry/model_registry.h"
#include "server/service/call_context.h"
#include "server/service/proto_conversion.h"
#include "server/service/request_recorder.h"

namespace dinov3::service {
namespace {

constexpr int kMaxInFlight = 32;

class StreamReactor : public grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>,
                      public DrainableStream {
 public:
  StreamReactor(grpc::CallbackServerContext* context, StreamRegistry* registry,
                const CallEnvironment& env)
      : context_(context),
        registry_(registry),
        env_(env),
        watch_(env.watchdog->Watch(context, absl::InfiniteFuture(), "StreamEmbed")) {
    StartRead(&incoming_);
    if (registry_->Add(this)) Drain();
  }

  void Drain() override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      draining_ = true;
      finish = MaybeFinish();
    }
    if (finish) Finish(*finish);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // client half-closed, or the call is broken
      std::optional<grpc::Status> finish;
      {
        absl::MutexLock lock(&mu_);
        reads_done_ = true;
        finish = MaybeFinish();
      }
      if (finish) Finish(*finish);
      return;
    }
    auto request = std::make_shared<v1::EmbedRequest>(std::move(incoming_));
    incoming_.Clear();
    RequestRecorder recorder(env_.metrics, "StreamEmbed", env_.models->Label(request->model()),
                             *context_, request->request_id(), request->images_size());
    bool finished = false;
    bool draining = false;
    {
      absl::MutexLock lock(&mu_);
      finished = finished_;
      draining = draining_;
      if (!finished) ++in_flight_;
    }
    const absl::Status drain_error =
        absl::UnavailableError("server is draining; send this request to another replica");
    if (finished) {  // the read completed after a drain finished the call: nothing is written
      recorder.Finish(drain_error);
      return;
    }
    if (draining) {  // read after the drain started: answered, not computed; reading stops
      OnAnswered(*request, recorder, drain_error, pipeline::EmbedResult(),
                 MemoryBudget::Reservation());
      return;
    }
    // Each request runs on the model it names, held until it is answered.
    absl::StatusOr<std::shared_ptr<registry::ServedModel>> model =
        env_.models->Find(request->model());
    absl::StatusOr<pipeline::EmbedJob> job =
        model.ok() ? ToEmbedJob(request, (*model)->pipeline().limits()) : model.status();
    absl::StatusOr<MemoryBudget::Reservation> memory =
        job.ok() ? (*model)->pipeline().Admit(*job) : job.status();
    if (!memory.ok()) {
      OnAnswered(*request, recorder, memory.status(), pipeline::EmbedResult(),
                 MemoryBudget::Reservation());
    } else {
      {
        absl::MutexLock lock(&mu_);
        held_bytes_ += memory->bytes();
      }
      pipeline::EmbedPipeline& model_pipeline = (*model)->pipeline();
      model_pipeline.Run(
          *std::move(job), WorkDeadline(*context_, env_.max_call), CancellationOf(context_),
          [this, request, recorder = std::move(recorder), held = *std::move(model),
           memory = *std::move(memory)](absl::Status status, pipeline::EmbedResult result) mutable {
            OnAnswered(*request, recorder, std::move(status), std::move(result), std::move(memory));
          });
    }
    absl::MutexLock lock(&mu_);
    if (draining_ || finished_) return;
    if (HasRoom()) {
      StartRead(&incoming_);
    } else {
      read_paused_ = true;
    }
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      Pop();
      if (!ok) {
        broken_ = true;
        while (!outgoing_.empty()) Pop();
      }
      ResumeReadingIfRoom();
      finish = WriteNextOrFinish();
    }
    if (finish) Finish(*finish);
  }

  void OnDone() override {
    registry_->Remove(this);
    watch_.Reset();
    delete this;
  }

 private:
  // An answer and the memory reservation of its request, held until the answer is written.
  struct Answer {
    v1::EmbedResponse response;
    MemoryBudget::Reservation memory;
  };

  void OnAnswered(const v1::EmbedRequest& request, RequestRecorder& recorder, absl::Status status,
                  pipeline::EmbedResult result, MemoryBudget::Reservation memory) {
    bool broken = false;
    {
      absl::MutexLock lock(&mu_);
      broken = broken_;
    }
    // An answer the client will never read (the stream broke) is recorded as CANCELLED.
    recorder.Finish(broken ? absl::CancelledError("stream broken before the answer was written")
                           : status);
    v1::EmbedResponse response;
    if (status.ok()) {
      response = ToEmbedResponse(std::move(result));
    } else {
      response.set_request_id(request.request_id().substr(0, pipeline::kMaxIdBytes));
      response.mutable_error()->set_code(static_cast<int>(status.code()));
      response.mutable_error()->set_message(std::string(status.message()));
    }
    // From now on this answer holds its bytes (twice while gRPC serializes it), no longer
    // pixels or tensors.
    const int64_t computed = memory.bytes();
    memory.ShrinkTo(pipeline::kResponseCopies * static_cast<int64_t>(response.ByteSizeLong()));
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      --in_flight_;
      held_bytes_ -= computed - memory.bytes();
      if (!broken_ && !finished_) {
        outgoing_.push_back({std::move(response), std::move(memory)});
      } else {
        held_bytes_ -= memory.bytes();
      }
      ResumeReadingIfRoom();
      finish = WriteNextOrFinish();
    }
    // Outside the lock: once Finish is called, OnDone may delete this reactor at any moment.
    if (finish) Finish(*finish);
  }

  // Whether another request may be read: requests being computed plus answers not yet written
  // (what this stream holds in memory) stay below both bounds.
  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_ + static_cast<int>(outgoing_.size()) < kMaxInFlight &&
           held_bytes_ < env_.max_stream_buffered_bytes;
  }

  // Drops the front answer (written, or never to be) and gives back its memory.
  void Pop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    held_bytes_ -= outgoing_.front().memory.bytes();
    outgoing_.pop_front();
    if (outgoing_.empty()) watch_.SetDeadline(absl::InfiniteFuture());
  }

  void ResumeReadingIfRoom() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_paused_ && !reads_done_ && !draining_ && !finished_ && HasRoom()) {
      read_paused_ = false;
      StartRead(&incoming_);
    }
  }

  // Starts the next write, or returns the status to finish with (the caller calls Finish after
  // releasing the lock).
  std::optional<grpc::Status> WriteNextOrFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_) return std::nullopt;
    if (!outgoing_.empty() && !broken_ && !finished_) {
      writing_ = true;
      // Each answer must be read within server.max_call_seconds.
      watch_.SetDeadline(absl::Now() + env_.max_call);
      StartWrite(&outgoing_.front().response);
      return std::nullopt;
    }
    return MaybeFinish();
  }

  std::optional<grpc::Status> MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || !(reads_done_ || draining_) || in_flight_ > 0 || writing_ ||
        !outgoing_.empty()) {
      return std::nullopt;
    }
    finished_ = true;
    if (broken_) return grpc::Status(grpc::StatusCode::CANCELLED, "stream broken");
    if (!reads_done_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "server is draining; open a new stream on another replica");
    }
    return grpc::Status::OK;
  }

  grpc::CallbackServerContext* const context_;
  StreamRegistry* const registry_;
  const CallEnvironment env_;
  CallWatchdog::Guard watch_;
  v1::EmbedRequest incoming_;  // only touched by the read chain

  absl::Mutex mu_;
  std::deque<Answer> outgoing_ ABSL_GUARDED_BY(mu_);  // front() is being written
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t held_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // reservations of in_flight_ and outgoing_
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

class RejectedStream : public grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse> {
 public:
  explicit RejectedStream(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

void StreamRegistry::DrainAll() {
  absl::MutexLock lock(&mu_);  // held: a stream cannot be deleted while it is told
  draining_ = true;
  for (DrainableStream* stream : streams_) stream->Drain();
}

bool StreamRegistry::Add(DrainableStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.insert(stream);
  return draining_;
}

void StreamRegistry::Remove(DrainableStream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

grpc::ServerBidiReactor<v1::EmbedRequest, v1::EmbedResponse>* StartStreamCall(
    grpc::CallbackServerContext* context, const absl::Status& refused, StreamRegistry* registry,
    const CallEnvironment& env) {
  if (!refused.ok()) {
    RequestRecorder(env.metrics, "StreamEmbed", "", *context, "", 0).Finish(refused);
    return new RejectedStream(refused);
  }
  return new StreamReactor(context, registry, env);
}

}  // namespace dinov3::service
