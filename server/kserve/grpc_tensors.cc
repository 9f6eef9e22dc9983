#include "server/kserve/grpc_tensors.h"

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"

namespace dinov3::kserve {
namespace {

using ProtoParameters = google::protobuf::Map<std::string, inference::InferParameter>;

absl::Status Invalid(std::string message) {
  return WithReason(absl::InvalidArgumentError(std::move(message)), kReasonInvalidRequest);
}

absl::StatusOr<Parameters> FromProto(const ProtoParameters& parameters) {
  Parameters out;
  for (const auto& [key, p] : parameters) {
    switch (p.parameter_choice_case()) {
      case inference::InferParameter::kBoolParam:
        out[key] = p.bool_param();
        break;
      case inference::InferParameter::kInt64Param:
        out[key] = p.int64_param();
        break;
      case inference::InferParameter::kStringParam:
        out[key] = p.string_param();
        break;
      case inference::InferParameter::kDoubleParam:
        out[key] = p.double_param();
        break;
      case inference::InferParameter::kUint64Param:
        if (p.uint64_param() > static_cast<uint64_t>(INT64_MAX)) {
          return Invalid(absl::StrCat("parameter '", key.substr(0, 64), "': ", p.uint64_param(),
                                      " is too large"));
        }
        out[key] = static_cast<int64_t>(p.uint64_param());
        break;
      case inference::InferParameter::PARAMETER_CHOICE_NOT_SET:
        return Invalid(absl::StrCat("parameter '", key.substr(0, 64), "' has no value"));
    }
  }
  return out;
}

bool HasTypedContents(const inference::InferTensorContents& c) {
  return c.bool_contents_size() + c.int_contents_size() + c.int64_contents_size() +
             c.uint_contents_size() + c.uint64_contents_size() + c.fp32_contents_size() +
             c.fp64_contents_size() + c.bytes_contents_size() >
         0;
}

// The typed contents of `proto` into `input` (BYTES elements moved; UINT8 values to bytes).
// Other datatypes are left without data: the mapping refuses them by their datatype.
absl::Status TakeTypedContents(inference::ModelInferRequest::InferInputTensor& proto,
                               InputTensor& input) {
  inference::InferTensorContents& contents = *proto.mutable_contents();
  if (input.datatype == "BYTES") {
    input.elements.reserve(contents.bytes_contents_size());
    for (std::string& element : *contents.mutable_bytes_contents()) {
      input.elements.push_back(std::move(element));
    }
    contents.clear_bytes_contents();
  } else if (input.datatype == "UINT8") {
    ASSIGN_OR_RETURN(input.raw, Uint8FromValues(input.name, input.shape, contents.uint_contents()));
    input.has_raw = true;
    contents.clear_uint_contents();
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<InferenceRequest> TakeInferRequest(inference::ModelInferRequest& request) {
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return Invalid(absl::StrCat("raw_input_contents: ", request.raw_input_contents_size(),
                                " entries for ", request.inputs_size(),
                                " inputs; send one per input, in the order of inputs"));
  }
  InferenceRequest out;
  out.model_name = request.model_name();
  out.model_version = request.model_version();
  out.id = request.id();
  ASSIGN_OR_RETURN(out.parameters, FromProto(request.parameters()));
  for (int i = 0; i < request.inputs_size(); ++i) {
    inference::ModelInferRequest::InferInputTensor& proto = *request.mutable_inputs(i);
    InputTensor& input = out.inputs.emplace_back();
    input.name = proto.name();
    input.datatype = proto.datatype();
    input.shape.assign(proto.shape().begin(), proto.shape().end());
    ASSIGN_OR_RETURN(input.parameters, FromProto(proto.parameters()));
    if (raw) {
      if (proto.has_contents() && HasTypedContents(proto.contents())) {
        return Invalid(absl::StrCat("input '", input.name.substr(0, 64),
                                    "': typed contents and raw_input_contents in one request; "
                                    "send one form"));
      }
      input.has_raw = true;
      input.raw.swap(*request.mutable_raw_input_contents(i));
      std::string().swap(*request.mutable_raw_input_contents(i));
    } else {
      RETURN_IF_ERROR(TakeTypedContents(proto, input));
    }
  }
  for (const inference::ModelInferRequest::InferRequestedOutputTensor& proto : request.outputs()) {
    RequestedOutput& output = out.outputs.emplace_back();
    output.name = proto.name();
    ASSIGN_OR_RETURN(output.parameters, FromProto(proto.parameters()));
  }
  return out;
}

void MoveToProto(InferenceResponse&& response, inference::ModelInferResponse* out) {
  out->set_model_name(std::move(response.model_name));
  out->set_model_version(std::move(response.model_version));
  out->set_id(std::move(response.id));
  for (OutputTensor& tensor : response.outputs) {
    inference::ModelInferResponse::InferOutputTensor* proto = out->add_outputs();
    proto->set_name(std::move(tensor.name));
    proto->set_datatype(std::move(tensor.datatype));
    for (int64_t dim : tensor.shape) proto->add_shape(dim);
    for (const auto& [key, value] : tensor.parameters) {
      inference::InferParameter& p = (*proto->mutable_parameters())[key];
      if (const auto* b = std::get_if<bool>(&value)) p.set_bool_param(*b);
      if (const auto* i = std::get_if<int64_t>(&value)) p.set_int64_param(*i);
      if (const auto* s = std::get_if<std::string>(&value)) p.set_string_param(*s);
      if (const auto* d = std::get_if<double>(&value)) p.set_double_param(*d);
    }
    out->add_raw_output_contents(std::move(tensor.data));
  }
}

void ToProto(const ModelMetadata& metadata, inference::ModelMetadataResponse* out) {
  out->set_name(metadata.name);
  for (const std::string& version : metadata.versions) out->add_versions(version);
  out->set_platform(metadata.platform);
  const auto add = [](const TensorMetadata& tensor,
                      inference::ModelMetadataResponse::TensorMetadata* proto) {
    proto->set_name(tensor.name);
    proto->set_datatype(tensor.datatype);
    for (int64_t dim : tensor.shape) proto->add_shape(dim);
  };
  for (const TensorMetadata& t : metadata.inputs) add(t, out->add_inputs());
  for (const TensorMetadata& t : metadata.outputs) add(t, out->add_outputs());
}

}  // namespace dinov3::kserve
