// Runs one EmbedJob (embed_job.h, what a front door made of its request) through the server in
// two steps. Admit: validation (job_validation.h), every image's
// header against the limits, the response against protobuf's 2 GiB, and a reservation of the
// request's whole memory footprint (request_footprint.h) in the MemoryBudget, all before any
// pixel is decoded. Run: per image a job on the preprocess pool that decodes it (a JPEG at
// reduced scale where preprocess.decode is fast and the image large enough), plans the resize
// for its full size, builds its model input where the engine wants that done on the host
// (PrepareInputFn) and schedules an EmbedTask on the queue; when every image is finished it
// assembles the EmbedResult (images in the job's order) or the first error.
//
// Contract: Run calls `done` exactly once, from some pool or worker thread (or inline when the
// request is invalid), and only after every task it created has finished, so whatever the
// callbacks reference may be released in `done`. An image that fails makes the remaining images
// of the same request cancelled (they are dropped before inference). Errors name the image
// index. Protocol-free; torch-free. Thread-safe.
#ifndef DINOV3_SERVER_PIPELINE_EMBED_PIPELINE_H_
#define DINOV3_SERVER_PIPELINE_EMBED_PIPELINE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/batching/batcher.h"
#include "server/common/memory_budget.h"
#include "server/metrics/server_metrics.h"
#include "server/pipeline/embed_job.h"
#include "server/pipeline/embed_result.h"
#include "server/pipeline/request_limits.h"
#include "server/pipeline/thread_pool.h"

namespace dinov3::pipeline {

class EmbedPipeline {
 public:
  using Done = absl::AnyInvocable<void(absl::Status, EmbedResult) &&>;

  // `pool`, `batcher`, the budgets and `metrics` must outlive the pipeline. `model_name` (the
  // served model's name, also the metrics' model label) and `export_id` (variant@hash) go into
  // every response. Requests reserve their footprint in `budget`; each encoded image
  // reserves its decoder transient in `decode_budget` while it decodes (waiting for room; its
  // capacity must hold one image of limits.image.max_pixels) and, with `prepare_input` (may be
  // empty), the conversion's transient after it (HostInputTransientBytes). Records each image's
  // preprocessing and queue wait in `metrics`.
  EmbedPipeline(const RequestLimits& limits, std::string model_name, std::string export_id,
                ThreadPool* pool, batching::Batcher* batcher, MemoryBudget* budget,
                MemoryBudget* decode_budget, metrics::ServerMetrics* metrics,
                batching::PrepareInputFn prepare_input = {});

  // The job's footprint, reserved: the caller holds it until the answer is written (or dropped).
  // InvalidArgument naming the field or image and the limit, also for a response above 2 GiB
  // or a footprint above the whole budget (reason too_large: it could never fit);
  // ResourceExhausted (reason memory_budget) when the budget has no room for it now.
  absl::StatusOr<MemoryBudget::Reservation> Admit(const EmbedJob& job);

  // Runs an admitted job (its owner keeps the images' bytes alive until `done` has run).
  // `is_cancelled` may be empty.
  void Run(EmbedJob job, absl::Time deadline, std::function<bool()> is_cancelled, Done done);

  const RequestLimits& limits() const { return limits_; }
  const std::string& model_name() const { return model_name_; }
  const std::string& export_id() const { return export_id_; }

 private:
  class Call;

  const RequestLimits limits_;
  const std::string model_name_;
  const std::string export_id_;
  ThreadPool* const pool_;
  batching::Batcher* const batcher_;
  MemoryBudget* const budget_;
  MemoryBudget* const decode_budget_;
  metrics::ServerMetrics* const metrics_;
  const batching::PrepareInputFn prepare_input_;
};

}  // namespace dinov3::pipeline

#endif  // DINOV3_SERVER_PIPELINE_EMBED_PIPELINE_H_
