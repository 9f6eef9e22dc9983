// The inference.* gRPC messages to and from the plain structs: data moved out of the request,
// raw and typed contents, parameters, and raw_output_contents in the response.
#include "server/kserve/grpc_tensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dinov3::kserve {
namespace {

using ::testing::HasSubstr;

inference::ModelInferRequest RawPixels() {
  inference::ModelInferRequest r;
  r.set_model_name("m");
  r.set_model_version("1");
  r.set_id("x");
  auto* input = r.add_inputs();
  input->set_name("PIXELS");
  input->set_datatype("UINT8");
  for (int64_t d : {1, 1, 2, 3}) input->add_shape(d);
  r.add_raw_input_contents(std::string(6, '\x07'));
  return r;
}

TEST(GrpcTensorsTest, RawContentsAreTakenOutOfTheMessage) {
  inference::ModelInferRequest r = RawPixels();
  (*r.mutable_parameters())["priority"].set_uint64_param(1);
  (*r.mutable_parameters())["l2_normalize"].set_bool_param(true);
  r.add_outputs()->set_name("REGISTERS");
  auto* cls = r.add_outputs();
  cls->set_name("CLS");
  (*cls->mutable_parameters())["datatype"].set_string_param("BF16");
  absl::StatusOr<InferenceRequest> out = TakeInferRequest(r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->model_name, "m");
  EXPECT_EQ(out->model_version, "1");
  EXPECT_EQ(out->id, "x");
  ASSERT_EQ(out->inputs.size(), 1u);
  EXPECT_TRUE(out->inputs[0].has_raw);
  EXPECT_EQ(out->inputs[0].raw, std::string(6, '\x07'));
  EXPECT_THAT(out->inputs[0].shape, ::testing::ElementsAre(1, 1, 2, 3));
  EXPECT_TRUE(r.raw_input_contents(0).empty());  // moved, not copied
  EXPECT_EQ(std::get<int64_t>(out->parameters.at("priority")), 1);
  EXPECT_TRUE(std::get<bool>(out->parameters.at("l2_normalize")));
  ASSERT_EQ(out->outputs.size(), 2u);
  EXPECT_EQ(out->outputs[0].name, "REGISTERS");
  EXPECT_EQ(out->outputs[1].name, "CLS");
  EXPECT_EQ(std::get<std::string>(out->outputs[1].parameters.at("datatype")), "BF16");
}

TEST(GrpcTensorsTest, TypedContents) {
  inference::ModelInferRequest r;
  auto* image = r.add_inputs();
  image->set_name("IMAGE");
  image->set_datatype("BYTES");
  image->add_shape(2);
  image->mutable_contents()->add_bytes_contents("one");
  image->mutable_contents()->add_bytes_contents("two");
  auto* pixels = r.add_inputs();
  pixels->set_name("PIXELS");
  pixels->set_datatype("UINT8");
  for (int64_t d : {1, 1, 1, 3}) pixels->add_shape(d);
  for (uint32_t v : {1u, 2u, 255u}) pixels->mutable_contents()->add_uint_contents(v);
  absl::StatusOr<InferenceRequest> out = TakeInferRequest(r);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->inputs[0].has_raw);
  EXPECT_THAT(out->inputs[0].elements, ::testing::ElementsAre("one", "two"));
  EXPECT_TRUE(out->inputs[1].has_raw);
  EXPECT_EQ(out->inputs[1].raw, std::string("\x01\x02\xff", 3));

  EXPECT_EQ(pixels->contents().uint_contents_size(), 0);  // taken
  for (uint32_t v : {300u, 2u, 3u}) pixels->mutable_contents()->add_uint_contents(v);
  EXPECT_THAT(TakeInferRequest(r).status().message(), HasSubstr("value 300 at 0"));
}

TEST(GrpcTensorsTest, MalformedRequestsAreRefused) {
  inference::ModelInferRequest extra = RawPixels();
  extra.add_raw_input_contents("more");
  EXPECT_THAT(TakeInferRequest(extra).status().message(),
              HasSubstr("raw_input_contents: 2 entries for 1 inputs"));
  inference::ModelInferRequest mixed = RawPixels();
  mixed.mutable_inputs(0)->mutable_contents()->add_uint_contents(1);
  EXPECT_THAT(TakeInferRequest(mixed).status().message(),
              HasSubstr("input 'PIXELS': typed contents and raw_input_contents"));
  inference::ModelInferRequest big = RawPixels();
  (*big.mutable_parameters())["timeout"].set_uint64_param(~uint64_t{0});
  EXPECT_THAT(TakeInferRequest(big).status().message(), HasSubstr("parameter 'timeout'"));
  inference::ModelInferRequest empty = RawPixels();
  (*empty.mutable_parameters())["size"];
  EXPECT_THAT(TakeInferRequest(empty).status().message(),
              HasSubstr("parameter 'size' has no value"));
  EXPECT_EQ(TakeInferRequest(empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GrpcTensorsTest, ResponseUsesRawOutputContents) {
  InferenceResponse response;
  response.model_name = "m";
  response.model_version = "1";
  response.id = "x";
  OutputTensor cls{"CLS", "FP16", {1, 2}, {}, "abcd"};
  OutputTensor patches{"PATCH_TOKENS", "FP32", {1, 1, 1}, {{"grid_height", int64_t{1}}}, "wxyz"};
  response.outputs = {cls, patches};
  inference::ModelInferResponse out;
  MoveToProto(std::move(response), &out);
  EXPECT_EQ(out.model_name(), "m");
  EXPECT_EQ(out.id(), "x");
  ASSERT_EQ(out.outputs_size(), 2);
  EXPECT_EQ(out.outputs(0).name(), "CLS");
  EXPECT_EQ(out.outputs(0).datatype(), "FP16");
  EXPECT_THAT(out.outputs(0).shape(), ::testing::ElementsAre(1, 2));
  EXPECT_FALSE(out.outputs(0).has_contents());
  EXPECT_EQ(out.outputs(1).parameters().at("grid_height").int64_param(), 1);
  ASSERT_EQ(out.raw_output_contents_size(), 2);
  EXPECT_EQ(out.raw_output_contents(0), "abcd");
  EXPECT_EQ(out.raw_output_contents(1), "wxyz");
}

}  // namespace
}  // namespace dinov3::kserve
