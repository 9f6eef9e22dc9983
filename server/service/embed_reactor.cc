#include "server/service/embed_reactor.h"

#include <memory>
#include <utility>

#include "server/service/admitted_call.h"
#include "server/service/model_registry.h"
#include "server/service/request_footprint.h"
#include "server/service/request_recorder.h"

namespace dinov3::service {
namespace {

class EmbedReactor : public grpc::ServerUnaryReactor {
 public:
  EmbedReactor(grpc::CallbackServerContext* context, const v1::EmbedRequest* request,
               v1::EmbedResponse* response, RequestRecorder recorder)
      : context_(context), request_(request), response_(response), recorder_(std::move(recorder)) {}

  void Refuse(const absl::Status& status) { FinishCall(status); }

  void Start(std::shared_ptr<ServedModel> model, const CallEnvironment& env) {
    model_ = std::move(model);  // held until the pipeline answers
    // The request outlives the call's Finish, which the pipeline calls last: no copy needed.
    std::shared_ptr<const v1::EmbedRequest> borrowed(request_, [](const v1::EmbedRequest*) {});
    absl::Status admitted = AdmitAndRun(
        model_->pipeline(), std::move(borrowed), context_, env, "Embed", hold_,
        [this](absl::Status status, v1::EmbedResponse result) {
          model_.reset();  // never the last holder: the registry or the retiring lifecycle is
          // From now on the call holds the request and the answer (twice while gRPC
          // serializes it), no longer pixels or tensors.
          hold_.memory.ShrinkTo(static_cast<int64_t>(request_->ByteSizeLong()) +
                                kResponseCopies * static_cast<int64_t>(result.ByteSizeLong()));
          if (status.ok()) *response_ = std::move(result);
          FinishCall(status);
        });
    if (!admitted.ok()) FinishCall(admitted);
  }

  void OnDone() override {
    hold_.watch.Reset();
    delete this;  // releases the memory reservation
  }

 private:
  void FinishCall(const absl::Status& status) {
    recorder_.Finish(status);
    Finish(ToGrpcStatus(status));
  }

  grpc::CallbackServerContext* const context_;
  const v1::EmbedRequest* const request_;
  v1::EmbedResponse* const response_;
  RequestRecorder recorder_;
  CallHold hold_;
  std::shared_ptr<ServedModel> model_;
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
  absl::StatusOr<std::shared_ptr<ServedModel>> model = env.models->Find(request->model());
  if (model.ok()) {
    reactor->Start(*std::move(model), env);
  } else {
    reactor->Refuse(model.status());
  }
  return reactor;
}

}  // namespace dinov3::service
