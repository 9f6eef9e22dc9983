#include "server/service/embed_reactor.h"

#include <memory>
#include <utility>

#include "server/pipeline/request_footprint.h"
#include "server/registry/model_registry.h"
#include "server/service/admitted_call.h"
#include "server/service/proto_conversion.h"
#include "server/service/request_recorder.h"

namespace dinov3::service {
namespace {

class EmbedReactor : public grpc::ServerUnaryReactor {
 public:
  EmbedReactor(grpc::CallbackServerContext* context, const v1::EmbedRequest* request,
               v1::EmbedResponse* response, RequestRecorder recorder)
      : context_(context), request_(request), response_(response), recorder_(std::move(recorder)) {}

  void Refuse(const absl::Status& status) { FinishCall(status); }

  void Start(std::shared_ptr<registry::ServedModel> model, const CallEnvironment& env) {
    model_ = std::move(model);  // held until the pipeline answers
    // The request outlives the call's Finish, which the pipeline calls last: no copy needed.
    std::shared_ptr<const v1::EmbedRequest> borrowed(request_, [](const v1::EmbedRequest*) {});
    pipeline::EmbedPipeline& model_pipeline = model_->pipeline();
    absl::StatusOr<pipeline::EmbedJob> job =
        ToEmbedJob(std::move(borrowed), model_pipeline.limits());
    absl::Status admitted = job.status();
    if (admitted.ok()) {
      admitted = AdmitAndRun(model_pipeline, *std::move(job), context_, env, "Embed", hold_,
                             [this](absl::Status status, pipeline::EmbedResult result) {
                               Answer(std::move(status), std::move(result));
                             });
    }
    if (!admitted.ok()) FinishCall(admitted);
  }

  void OnDone() override {
    hold_.watch.Reset();
    delete this;  // releases the memory reservation
  }

 private:
  void Answer(absl::Status status, pipeline::EmbedResult result) {
    model_.reset();  // never the last holder: the registry or the retiring lifecycle is
    if (status.ok()) *response_ = ToEmbedResponse(std::move(result));
    // From now on the call holds the request and the answer (twice while gRPC serializes it),
    // no longer pixels or tensors.
    hold_.memory.ShrinkTo(static_cast<int64_t>(request_->ByteSizeLong()) +
                          pipeline::kResponseCopies *
                              static_cast<int64_t>(response_->ByteSizeLong()));
    FinishCall(status);
  }

  void FinishCall(const absl::Status& status) {
    recorder_.Finish(status);
    Finish(ToGrpcStatus(status));
  }

  grpc::CallbackServerContext* const context_;
  const v1::EmbedRequest* const request_;
  v1::EmbedResponse* const response_;
  RequestRecorder recorder_;
  CallHold hold_;
  std::shared_ptr<registry::ServedModel> model_;
};

}  // namespace

grpc::ServerUnaryReactor* StartEmbedCall(grpc::CallbackServerContext* context,
                                         const v1::EmbedRequest* request,
                                         v1::EmbedResponse* response, const absl::Status& refused,
                                         const CallEnvironment& env) {
  auto* reactor =
      new EmbedReactor(context, request, response,
                       RequestRecorder(env.metrics, "Embed", env.models->Label(request->model()),
                                       *context, request->request_id(), request->images_size()));
  if (!refused.ok()) {
    reactor->Refuse(refused);
    return reactor;
  }
  absl::StatusOr<std::shared_ptr<registry::ServedModel>> model = env.models->Find(request->model());
  if (model.ok()) {
    reactor->Start(*std::move(model), env);
  } else {
    reactor->Refuse(model.status());
  }
  return reactor;
}

}  // namespace dinov3::service
