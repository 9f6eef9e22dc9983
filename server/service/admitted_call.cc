#include "server/service/admitted_call.h"

#include <utility>

namespace dinov3::service {

absl::Status AdmitAndRun(EmbedPipeline& pipeline, std::shared_ptr<const v1::EmbedRequest> request,
                         grpc::CallbackServerContext* context, const CallEnvironment& env,
                         const char* method, CallHold& hold, EmbedPipeline::Done done) {
  absl::StatusOr<EmbedPipeline::Admission> admission = pipeline.Admit(*request);
  if (!admission.ok()) return admission.status();
  hold.memory = std::move(admission->memory);
  const absl::Time deadline = WorkDeadline(*context, env.max_call);
  hold.watch = env.watchdog->Watch(context, deadline + kUndeliveredGrace, method);
  pipeline.Run(std::move(request), std::move(admission->settings), deadline,
               CancellationOf(context), std::move(done));
  return absl::OkStatus();
}

}  // namespace dinov3::service
