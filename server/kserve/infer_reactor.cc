#include "server/kserve/infer_reactor.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>

#include "server/common/status_macros.h"
#include "server/kserve/grpc_tensors.h"
#include "server/kserve/inference_tensors.h"
#include "server/pipeline/request_footprint.h"
#include "server/registry/model_registry.h"
#include "server/service/admitted_call.h"
#include "server/service/proto_conversion.h"
#include "server/service/request_recorder.h"

namespace dinov3::kserve {
namespace {

using registry::ServedModel;
using service::CallEnvironment;

// The first dimension of the first input: the image count the access log shows.
int ImagesHint(const inference::ModelInferRequest& request) {
  if (request.inputs_size() == 0 || request.inputs(0).shape_size() == 0) return 0;
  return static_cast<int>(
      std::clamp<int64_t>(request.inputs(0).shape(0), 0, std::numeric_limits<int>::max()));
}

class InferReactor : public grpc::ServerUnaryReactor {
 public:
  InferReactor(grpc::CallbackServerContext* context, inference::ModelInferResponse* response,
               service::RequestRecorder recorder)
      : context_(context), response_(response), recorder_(std::move(recorder)) {}

  void Refuse(const absl::Status& status) { FinishCall(status); }

  void Start(inference::ModelInferRequest& request, const CallEnvironment& env) {
    absl::Status status = TryStart(request, env);
    if (status.ok()) return;
    model_.reset();
    FinishCall(status);
  }

  void OnDone() override {
    hold_.watch.Reset();
    delete this;  // releases the memory reservation
  }

 private:
  absl::Status TryStart(inference::ModelInferRequest& request, const CallEnvironment& env) {
    ASSIGN_OR_RETURN(model_, env.models->Find(request.model_name()));
    RETURN_IF_ERROR(CheckModelVersion(request.model_name(), request.model_version()));
    ASSIGN_OR_RETURN(InferenceRequest tensors, TakeInferRequest(request));
    ASSIGN_OR_RETURN(MappedRequest mapped,
                     ToEmbedJob(std::move(tensors), model_->pipeline().limits()));
    plan_ = std::move(mapped.plan);
    request_bytes_ = mapped.job.received_bytes;
    CallEnvironment call_env = env;
    call_env.max_call = std::min(env.max_call, mapped.timeout);
    return service::AdmitAndRun(model_->pipeline(), std::move(mapped.job), context_, call_env,
                                "ModelInfer", hold_,
                                [this](absl::Status status, pipeline::EmbedResult result) {
                                  Answer(std::move(status), std::move(result));
                                });
  }

  // The pipeline's answer; runs once, after every task of the request finished.
  void Answer(absl::Status status, pipeline::EmbedResult result) {
    model_.reset();  // never the last holder: the registry or the retiring lifecycle is
    if (status.ok()) {
      absl::StatusOr<InferenceResponse> tensors = ToInferenceResponse(std::move(result), plan_);
      status = tensors.status();
      if (status.ok()) MoveToProto(*std::move(tensors), response_);
    }
    // From now on the call holds the request and the answer (twice while gRPC serializes it).
    hold_.memory.ShrinkTo(request_bytes_ + pipeline::kResponseCopies *
                                               static_cast<int64_t>(response_->ByteSizeLong()));
    FinishCall(status);
  }

  void FinishCall(const absl::Status& status) {
    recorder_.Finish(status);
    Finish(service::ToGrpcStatus(status));
  }

  grpc::CallbackServerContext* const context_;
  inference::ModelInferResponse* const response_;
  service::RequestRecorder recorder_;
  service::CallHold hold_;
  std::shared_ptr<registry::ServedModel> model_;
  int64_t request_bytes_ = 0;  // the request's, held by the job's owner until the pipeline is done
  OutputPlan plan_;
};

}  // namespace

grpc::ServerUnaryReactor* StartInferCall(grpc::CallbackServerContext* context,
                                         const inference::ModelInferRequest* request,
                                         inference::ModelInferResponse* response,
                                         const absl::Status& refused, const CallEnvironment& env) {
  auto* reactor = new InferReactor(
      context, response,
      service::RequestRecorder(env.metrics, "ModelInfer", env.models->Label(request->model_name()),
                               *context, request->id(), ImagesHint(*request)));
  if (!refused.ok()) {
    reactor->Refuse(refused);
    return reactor;
  }
  // gRPC made the message for this call and is done reading it (infer_reactor.h, Ownership).
  reactor->Start(const_cast<inference::ModelInferRequest&>(*request), env);
  return reactor;
}

}  // namespace dinov3::kserve
