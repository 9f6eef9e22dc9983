#include "client/bench/oip_grpc_transport.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client/bench/oip_tensors.h"
#include "inference/grpc_service.grpc.pb.h"

namespace dinov3::bench {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;

std::chrono::system_clock::time_point DeadlineIn(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(seconds));
}

// The data bytes of output `index`: its raw contents, or its FP32 typed contents.
size_t DataBytes(const ModelInferResponse& response, int index) {
  if (index < response.raw_output_contents_size()) {
    return response.raw_output_contents(index).size();
  }
  return static_cast<size_t>(response.outputs(index).contents().fp32_contents_size()) * 4;
}

// "" when every output `request` asks for is answered as asked.
std::string Check(const ModelInferRequest& request, const ModelInferResponse& response) {
  const int images = static_cast<int>(request.inputs(0).shape(0));
  for (const ModelInferRequest::InferRequestedOutputTensor& asked : request.outputs()) {
    const OipOutput want{asked.name(), asked.parameters().at("datatype").string_param()};
    bool found = false;
    for (int i = 0; i < response.outputs_size() && !found; ++i) {
      const ModelInferResponse::InferOutputTensor& output = response.outputs(i);
      if (output.name() != want.name) continue;
      found = true;
      if (!OipOutputMatches(want, images, output.datatype(), output.shape(),
                            DataBytes(response, i))) {
        return kBadResponse;
      }
    }
    if (!found) return kBadResponse;
  }
  return "";
}

class OipGrpcTransport : public Transport {
 public:
  OipGrpcTransport(const GrpcTarget& target, std::vector<ModelInferRequest> requests)
      : target_(target), requests_(std::move(requests)) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);  // patch tokens of large images exceed 4 MiB
    args.SetMaxSendMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(target.address, grpc::InsecureChannelCredentials(), args);
    stub_ = inference::GRPCInferenceService::NewStub(channel_);
  }

  absl::Status Open(int /*workers*/) override {
    if (!channel_->WaitForConnected(DeadlineIn(target_.connect_seconds))) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", target_.address, " within ",
                                                 target_.connect_seconds, " s"));
    }
    return absl::OkStatus();
  }

  CallResult Call(int /*worker*/) override {
    const ModelInferRequest& request =
        requests_[next_.fetch_add(1, std::memory_order_relaxed) % requests_.size()];
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(target_.timeout_seconds));
    ModelInferResponse response;
    const grpc::Status status = stub_->ModelInfer(&context, request, &response);
    CallResult result;
    result.images = static_cast<int>(request.inputs(0).shape(0));
    if (!status.ok()) {
      result.error = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
      return result;
    }
    result.response_bytes = response.ByteSizeLong();
    result.error = Check(request, response);
    return result;
  }

  void Close() override {}

 private:
  const GrpcTarget target_;
  const std::vector<ModelInferRequest> requests_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::atomic<size_t> next_{0};
};

}  // namespace

absl::StatusOr<std::vector<ModelInferRequest>> MakeOipGrpcRequests(
    const RequestSpec& spec, const std::vector<v1::Image>& images) {
  std::vector<ModelInferRequest> requests;
  for (const v1::Image& image : images) {
    absl::StatusOr<OipInput> input = MakeOipInput(image, spec.images_per_request);
    if (!input.ok()) return input.status();
    ModelInferRequest request;
    ModelInferRequest::InferInputTensor* tensor = request.add_inputs();
    tensor->set_name(input->name);
    tensor->set_datatype(input->datatype);
    for (const int64_t dimension : input->shape) tensor->add_shape(dimension);
    request.add_raw_input_contents(std::move(input->raw));
    for (const OipOutput& output : OipOutputs(spec)) {
      ModelInferRequest::InferRequestedOutputTensor* asked = request.add_outputs();
      asked->set_name(output.name);
      (*asked->mutable_parameters())["datatype"].set_string_param(output.datatype);
    }
    if (spec.resize_height > 0) {
      (*request.mutable_parameters())["height"].set_int64_param(spec.resize_height);
    }
    if (spec.resize_width > 0) {
      (*request.mutable_parameters())["width"].set_int64_param(spec.resize_width);
    }
    for (const std::string& model : ModelSequence(spec)) {
      request.set_model_name(model);
      requests.push_back(request);
    }
  }
  return requests;
}

std::unique_ptr<Transport> MakeOipGrpcTransport(const GrpcTarget& target,
                                                std::vector<ModelInferRequest> requests) {
  return std::make_unique<OipGrpcTransport>(target, std::move(requests));
}

}  // namespace dinov3::bench
