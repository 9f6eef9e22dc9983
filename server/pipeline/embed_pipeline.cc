#include "server/pipeline/embed_pipeline.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"
#include "server/pipeline/job_image.h"
#include "server/pipeline/job_validation.h"
#include "server/pipeline/request_footprint.h"

namespace dinov3::pipeline {
// The state of one request while its images are in flight. Shared by the decode jobs and
// tasks of the request; the last image to finish answers it.
class EmbedPipeline::Call : public std::enable_shared_from_this<Call> {
 public:
  Call(const EmbedPipeline& pipeline, EmbedJob job, absl::Time deadline,
       std::function<bool()> is_cancelled, Done done)
      : pipeline_(pipeline),
        job_(std::move(job)),
        settings_(job_.settings),
        deadline_(deadline),
        is_cancelled_(std::move(is_cancelled)),
        done_(std::move(done)),
        results_(job_.images.size()),
        remaining_(static_cast<int>(job_.images.size())) {}

  // Submits one decode job per image. The request may be answered (and released) while this
  // loop still runs, so it reads nothing of the job after the last submit.
  void Start() {
    const int images = static_cast<int>(job_.images.size());
    batching::Batcher* const batcher = pipeline_.batcher_;
    ThreadPool* const pool = pipeline_.pool_;
    batcher->Expect(images);
    for (int i = 0; i < images; ++i) {
      ThreadPool::Job job = [self = shared_from_this(), i]() { self->DecodeAndSchedule(i); };
      if (!pool->TrySubmit(job)) {
        batcher->Unexpect(1);
        Complete(i, WithReason(absl::ResourceExhaustedError(
                                   "preprocess backlog full (too many images waiting to be "
                                   "decoded); retry later"),
                               kReasonQueueFull));
      }
    }
  }

 private:
  bool Cancelled() const {
    return failed_.load(std::memory_order_relaxed) || (is_cancelled_ && is_cancelled_());
  }

  // Decodes image `index` and hands it to the batcher, which retires its expectation of the
  // image in the same step; on failure retires it here. Touches nothing after a successful
  // hand-off: the request may be answered from then on.
  void DecodeAndSchedule(int index) {
    batching::Batcher* const batcher = pipeline_.batcher_;
    bool reached_batcher = false;
    absl::Status status = TryDecodeAndSchedule(index, batcher, reached_batcher);
    if (status.ok()) return;
    if (!reached_batcher) batcher->Unexpect(1);
    Complete(index, std::move(status));
  }

  absl::Status TryDecodeAndSchedule(int index, batching::Batcher* batcher, bool& reached_batcher) {
    if (Cancelled()) return absl::CancelledError("request cancelled");
    if (absl::Now() >= deadline_) {
      return absl::DeadlineExceededError("deadline passed before decoding");
    }
    const absl::Time start = absl::Now();
    ASSIGN_OR_RETURN(preprocess::ReducedImage decoded, Decode(job_.images[index]));
    // Planned for the full-size image: a reduced decode changes the values, never the shapes.
    ASSIGN_OR_RETURN(const ResizePlan plan,
                     preprocess::PlanResize(decoded.full_size.height, decoded.full_size.width,
                                            settings_.preprocess, pipeline_.limits_.geometry));
    auto task = std::make_unique<batching::EmbedTask>();
    task->image = std::move(decoded.image);
    task->plan = plan;
    if (pipeline_.prepare_input_) {
      // The conversion of a camera photo takes about as long as its decode: not for nothing.
      if (Cancelled()) return absl::CancelledError("request cancelled");
      if (absl::Now() >= deadline_) {
        return absl::DeadlineExceededError("deadline passed before preprocessing");
      }
      RETURN_IF_ERROR(PrepareInput(*task));
    }
    RecordPreprocess(absl::ToDoubleSeconds(absl::Now() - start));

    task->outputs = settings_.outputs;
    task->dtype = settings_.dtype;
    task->l2_normalize = settings_.l2_normalize;
    task->layers = settings_.layers;
    task->priority = settings_.priority;
    task->deadline = deadline_;
    task->is_cancelled = [self = shared_from_this()] { return self->Cancelled(); };
    task->done = [self = shared_from_this(), index](absl::StatusOr<EmbeddingResult> result) {
      self->Complete(index, std::move(result));
    };
    // On error the task (and its `done`) stays ours and is dropped; the image is retired.
    reached_batcher = true;
    return batcher->Schedule(task, /*expected=*/true);
  }

  // The image as RGB8, an encoded one at the scale settings_.preprocess.decode allows; an
  // encoded one holds its decoder transient in the decode budget while it decodes.
  absl::StatusOr<preprocess::ReducedImage> Decode(const JobImage& image) {
    MemoryBudget::Reservation transient;
    if (!image.raw) {
      ASSIGN_OR_RETURN(const preprocess::ImageSize size,
                       JobImageSize(image, pipeline_.limits_.image));
      transient = pipeline_.decode_budget_->Reserve(kDecodeTransientBytesPerPixel * size.width *
                                                    size.height);
    }
    return DecodeJobImage(image, pipeline_.limits_, settings_.preprocess);
  }

  // Builds the task's model input (the engine's PrepareInputFn), holding the conversion's
  // transient in the decode budget meanwhile. The budget holds one image of the limits'
  // largest (PreprocessTransientBytes); the cap only guards that invariant against a wait that
  // could never end.
  absl::Status PrepareInput(batching::EmbedTask& task) {
    MemoryBudget* const budget = pipeline_.decode_budget_;
    const MemoryBudget::Reservation transient = budget->Reserve(
        std::min(HostInputTransientBytes(task.image, task.plan), budget->request_capacity()));
    return pipeline_.prepare_input_(task);
  }

  void RecordPreprocess(double seconds) {
    pipeline_.metrics_->ObservePreprocess(pipeline_.model_name_, seconds);
    absl::MutexLock lock(&mu_);
    preprocess_seconds_ = std::max(preprocess_seconds_, seconds);
  }

  void Complete(int index, absl::StatusOr<EmbeddingResult> result) {
    {
      absl::MutexLock lock(&mu_);
      if (result.ok()) {
        pipeline_.metrics_->ObserveQueueWait(pipeline_.model_name_, result->queue_seconds);
        results_[index] = *std::move(result);
      } else if (error_.ok()) {
        error_ = ImageError(index, result.status());
        failed_.store(true, std::memory_order_relaxed);
      }
      if (--remaining_ > 0) return;
    }
    Answer();
  }

  // Runs once, after the last image finished; `done` runs outside the lock.
  void Answer() {
    EmbedResult answer;
    absl::Status status;
    {
      absl::MutexLock lock(&mu_);
      status = error_;
      if (status.ok()) FillResult(answer);
    }
    std::move(done_)(std::move(status), std::move(answer));
  }

  void FillResult(EmbedResult& answer) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    answer.request_id = job_.request_id;
    answer.export_id = pipeline_.export_id_;
    answer.model_name = pipeline_.model_name_;
    RequestTiming& timing = answer.timing;
    timing.preprocess_seconds = preprocess_seconds_;
    answer.embeddings.reserve(job_.images.size());
    for (size_t i = 0; i < job_.images.size(); ++i) {
      EmbeddingResult& result = *results_[i];
      timing.queue_seconds = std::max(timing.queue_seconds, result.queue_seconds);
      timing.inference_seconds = std::max(timing.inference_seconds, result.inference_seconds);
      timing.batch_size = std::max(timing.batch_size, result.batch_size);
      answer.embeddings.push_back({std::string(job_.images[i].id), std::move(result)});
    }
  }

  const EmbedPipeline& pipeline_;
  const EmbedJob job_;
  const EmbedSettings& settings_;  // job_'s
  const absl::Time deadline_;
  const std::function<bool()> is_cancelled_;
  Done done_;
  std::atomic<bool> failed_{false};

  absl::Mutex mu_;
  std::vector<std::optional<EmbeddingResult>> results_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  double preprocess_seconds_ ABSL_GUARDED_BY(mu_) = 0;
  int remaining_ ABSL_GUARDED_BY(mu_);
};

EmbedPipeline::EmbedPipeline(const RequestLimits& limits, std::string model_name,
                             std::string export_id, ThreadPool* pool, batching::Batcher* batcher,
                             MemoryBudget* budget, MemoryBudget* decode_budget,
                             metrics::ServerMetrics* metrics,
                             batching::PrepareInputFn prepare_input)
    : limits_(limits),
      model_name_(std::move(model_name)),
      export_id_(std::move(export_id)),
      pool_(pool),
      batcher_(batcher),
      budget_(budget),
      decode_budget_(decode_budget),
      metrics_(metrics),
      prepare_input_(std::move(prepare_input)) {}

absl::StatusOr<MemoryBudget::Reservation> EmbedPipeline::Admit(const EmbedJob& job) {
  RETURN_IF_ERROR(ValidateJob(job, limits_));
  ASSIGN_OR_RETURN(const RequestFootprint footprint, EstimateFootprint(job, limits_));
  if (footprint.response_bytes > kMaxResponseMessageBytes) {
    return WithReason(
        absl::InvalidArgumentError(absl::StrCat(
            "the response would be ", footprint.response_bytes,
            " bytes, above the largest message protobuf can encode (", kMaxResponseMessageBytes,
            " bytes); ask for fewer images per request, a smaller dtype, fewer outputs or "
            "fewer layers (EmbedDense streams patch tokens in chunks)")),
        kReasonTooLarge);
  }
  const int64_t bytes = footprint.total();
  if (bytes > budget_->request_capacity()) {
    return WithReason(
        absl::InvalidArgumentError(absl::StrCat(
            "the request needs ", bytes, " bytes of server memory (", footprint.Describe(),
            "), above the ", budget_->request_capacity(), " bytes of the memory budget (",
            budget_->capacity(),
            " bytes, limits.memory_budget_bytes) requests may ever hold; send fewer or smaller "
            "images per request")),
        kReasonTooLarge);
  }
  std::optional<MemoryBudget::Reservation> memory = budget_->TryReserve(bytes);
  if (!memory) {
    return WithReason(absl::ResourceExhaustedError(absl::StrCat(
                          "server memory budget full: the request needs ", bytes, " bytes, ",
                          budget_->used(), " of ", budget_->capacity(),
                          " bytes are held by accepted requests (limits.memory_budget_bytes); "
                          "retry later or on another replica")),
                      kReasonMemoryBudget);
  }
  return *std::move(memory);
}

void EmbedPipeline::Run(EmbedJob job, absl::Time deadline, std::function<bool()> is_cancelled,
                        Done done) {
  std::make_shared<Call>(*this, std::move(job), deadline, std::move(is_cancelled), std::move(done))
      ->Start();
}

}  // namespace dinov3::pipeline
