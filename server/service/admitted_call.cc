#include "server/service/admitted_call.h"

#include <utility>

namespace dinov3::service {

absl::Status AdmitAndRun(pipeline::EmbedPipeline& pipeline, pipeline::EmbedJob job,
                         grpc::CallbackServerContext* context, const CallEnvironment& env,
                         const char* method, CallHold& hold, pipeline::EmbedPipeline::Done done) {
  absl::StatusOr<MemoryBudget::Reservation> memory = pipeline.Admit(job);
  if (!memory.ok()) return memory.status();
  hold.memory = *std::move(memory);
  const absl::Time deadline = WorkDeadline(*context, env.max_call);
  hold.watch = env.watchdog->Watch(context, deadline + kUndeliveredGrace, method);
  pipeline.Run(std::move(job), deadline, CancellationOf(context), std::move(done));
  return absl::OkStatus();
}

}  // namespace dinov3::service
