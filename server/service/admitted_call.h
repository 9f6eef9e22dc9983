// The admission step the gRPC calls share (Embed, EmbedDense, KServe's ModelInfer): admit a job
// into the pipeline
// (its memory reserved in the budget), watch the call with the CallWatchdog, and run it with
// the call's work deadline (WorkDeadline; an answer still undelivered kUndeliveredGrace later
// cancels the call). What the call holds from then on lives in a CallHold, which the reactor
// keeps until OnDone.
#ifndef DINOV3_SERVER_SERVICE_ADMITTED_CALL_H_
#define DINOV3_SERVER_SERVICE_ADMITTED_CALL_H_

#include <grpcpp/grpcpp.h>

#include <memory>

#include "absl/status/status.h"
#include "server/common/memory_budget.h"
#include "server/pipeline/embed_job.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/service/call_context.h"
#include "server/service/call_watchdog.h"

namespace dinov3::service {

// What an admitted call holds until gRPC is done with it. Reset `watch` in OnDone, before the
// context goes away.
struct CallHold {
  MemoryBudget::Reservation memory;
  CallWatchdog::Guard watch;
};

// OK once `job` is admitted and running (`done` will be called); otherwise the refusal, with
// nothing held and `done` never called. `method` (a string literal) names the call in the
// watchdog's log line.
absl::Status AdmitAndRun(pipeline::EmbedPipeline& pipeline, pipeline::EmbedJob job,
                         grpc::CallbackServerContext* context, const CallEnvironment& env,
                         const char* method, CallHold& hold, pipeline::EmbedPipeline::Done done);

}  // namespace dinov3::service

#endif  // DINOV3_SERVER_SERVICE_ADMITTED_CALL_H_
