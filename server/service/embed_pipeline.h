// Runs one EmbedRequest through the server in two steps. Admit: validation, every image's
// header against the limits, the response against protobuf's 2 GiB, and a reservation of the
// request's whole memory footprint (request_footprint.h) in the MemoryBudget, all before any
// pixel is decoded. Run: per image a job on the preprocess pool that decodes it (a JPEG at
// reduced scale where preprocess.decode is fast and the image large enough), plans the resize
// for its full size, builds its model input where the engine wants that done on the host
// (PrepareInputFn) and schedules an EmbedTask on the queue; when every image is finished it
// assembles the EmbedResponse (images in request order) or the first error.
//
// Contract: Run calls `done` exactly once, from some pool or worker thread (or inline when the
// request is invalid), and only after every task it created has finished, so whatever the
// callbacks reference may be released in `done`. An image that fails makes the remaining images
// of the same request cancelled (they are dropped before inference). Errors name the image
// index. gRPC-free apart from the message types; torch-free. Thread-safe.
#ifndef DINOV3_SERVER_SERVICE_EMBED_PIPELINE_H_
#define DINOV3_SERVER_SERVICE_EMBED_PIPELINE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "dinov3/v1/embedding.pb.h"
#include "server/batching/batcher.h"
#include "server/common/memory_budget.h"
#include "server/metrics/server_metrics.h"
#include "server/service/proto_conversion.h"
#include "server/service/thread_pool.h"

namespace dinov3::service {

class EmbedPipeline {
 public:
  using Done = absl::AnyInvocable<void(absl::Status, v1::EmbedResponse) &&>;

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

  struct Admission {
    EmbedSettings settings;
    // The request's footprint; the caller holds it until the answer is written (or dropped).
    MemoryBudget::Reservation memory;
  };
  // InvalidArgument naming the field or image and the limit, also for a response above 2 GiB
  // or a footprint above the whole budget (reason too_large: it could never fit);
  // ResourceExhausted (reason memory_budget) when the budget has no room for it now.
  absl::StatusOr<Admission> Admit(const v1::EmbedRequest& request);

  // Runs an admitted request with the settings Admit returned for it. `request` must stay valid
  // until `done` runs. `is_cancelled` may be empty.
  void Run(std::shared_ptr<const v1::EmbedRequest> request, EmbedSettings settings,
           absl::Time deadline, std::function<bool()> is_cancelled, Done done);

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

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_EMBED_PIPELINE_H_
