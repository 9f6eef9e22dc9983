// The request sets and answer checks of the Open Inference Protocol (oip_tensors.h,
// oip_grpc_transport.h, oip_rest_transport.h) and OpenAI (openai_transport.h) transports: BYTES
// element framing, the IMAGE / PIXELS inputs, requested outputs, binary REST bodies and answers,
// data URLs and the embedding count. No server.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/bench/oip_grpc_transport.h"
#include "client/bench/oip_rest_transport.h"
#include "client/bench/oip_tensors.h"
#include "client/bench/openai_transport.h"
#include "nlohmann/json.hpp"

namespace dinov3::bench {
namespace {

using nlohmann::json;

v1::Image Encoded(const std::string& bytes) {
  v1::Image image;
  image.set_encoded(bytes);
  return image;
}

v1::Image Pixels(int width, int height) {
  v1::Image image;
  image.mutable_raw()->set_width(width);
  image.mutable_raw()->set_height(height);
  image.mutable_raw()->set_format(v1::RGB8);
  image.mutable_raw()->set_data(std::string(static_cast<size_t>(width) * height * 3, '\x7f'));
  return image;
}

TEST(OipTensorsTest, BytesElementsAreLengthPrefixedLittleEndian) {
  std::string raw;
  AppendBytesElement("abc", raw);
  EXPECT_EQ(raw, std::string("\x03\x00\x00\x00"
                             "abc",
                             7));
  AppendBytesElement("", raw);
  EXPECT_EQ(raw.size(), 11u);
  EXPECT_EQ(raw.substr(7), std::string(4, '\0'));
  std::string big;
  AppendBytesElement(std::string(0x0304, 'x'), big);
  EXPECT_EQ(big.substr(0, 4), std::string("\x04\x03\x00\x00", 4));
  EXPECT_EQ(big.size(), 4u + 0x0304);
}

TEST(OipTensorsTest, FilesAreImageAndPixelsArePixels) {
  absl::StatusOr<OipInput> image = MakeOipInput(Encoded("PNGDATA"), 2);
  ASSERT_TRUE(image.ok());
  EXPECT_EQ(image->name, "IMAGE");
  EXPECT_EQ(image->datatype, "BYTES");
  EXPECT_EQ(image->shape, std::vector<int64_t>({2}));
  EXPECT_EQ(image->raw, std::string("\x07\0\0\0PNGDATA\x07\0\0\0PNGDATA", 22));

  absl::StatusOr<OipInput> pixels = MakeOipInput(Pixels(5, 3), 2);
  ASSERT_TRUE(pixels.ok());
  EXPECT_EQ(pixels->name, "PIXELS");
  EXPECT_EQ(pixels->datatype, "UINT8");
  EXPECT_EQ(pixels->shape, std::vector<int64_t>({2, 3, 5, 3}));
  EXPECT_EQ(pixels->raw.size(), 2u * 3 * 5 * 3);

  v1::Image gray = Pixels(2, 2);
  gray.mutable_raw()->set_format(v1::GRAY8);
  EXPECT_EQ(MakeOipInput(gray, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeOipInput(Encoded("x"), 0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OipTensorsTest, OutputsDefaultToClsAndPooledInTheDtype) {
  RequestSpec spec;
  std::vector<OipOutput> outputs = OipOutputs(spec);
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].name, "CLS");
  EXPECT_EQ(outputs[1].name, "POOLED");
  EXPECT_EQ(outputs[1].datatype, "FP32");
  spec.outputs = {v1::PATCH_TOKENS, v1::REGISTERS};
  spec.dtype = v1::BFLOAT16;
  outputs = OipOutputs(spec);
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].name, "PATCH_TOKENS");
  EXPECT_EQ(outputs[1].name, "REGISTERS");
  EXPECT_EQ(outputs[0].datatype, "BF16");
  spec.dtype = v1::FLOAT16;
  EXPECT_EQ(OipOutputs(spec)[0].datatype, "FP16");
}

TEST(OipTensorsTest, OutputMatchesItsShapeDatatypeAndBytes) {
  const OipOutput cls{"CLS", "FP16"};
  EXPECT_TRUE(OipOutputMatches(cls, 2, "FP16", {2, 384}, 2 * 384 * 2));
  EXPECT_FALSE(OipOutputMatches(cls, 2, "FP32", {2, 384}, 2 * 384 * 2));      // datatype
  EXPECT_FALSE(OipOutputMatches(cls, 1, "FP16", {2, 384}, 2 * 384 * 2));      // images
  EXPECT_FALSE(OipOutputMatches(cls, 2, "FP16", {2, 384}, 2 * 384 * 2 - 2));  // bytes
  EXPECT_FALSE(OipOutputMatches(cls, 2, "FP16", {}, 0));
  EXPECT_FALSE(OipOutputMatches(cls, 2, "FP16", {2, 0}, 0));
  EXPECT_FALSE(OipOutputMatches(cls, 2, "FP16", {2, -384}, 0));
  EXPECT_TRUE(OipOutputMatches({"PATCH_TOKENS", "FP32"}, 1, "FP32", {1, 196, 384}, 196 * 384 * 4));
  EXPECT_EQ(OipElementSize("BF16"), 2u);
  EXPECT_EQ(OipElementSize("INT8"), 0u);
}

TEST(OipGrpcRequestsTest, RequestsCarryInputOutputsModelsAndResize) {
  RequestSpec spec{.images_per_request = 3,
                   .outputs = {v1::CLS, v1::PATCH_TOKENS},
                   .dtype = v1::FLOAT16,
                   .resize_height = 64,
                   .resize_width = 48,
                   .models = {{"small", 2}, {"large", 1}}};
  absl::StatusOr<std::vector<inference::ModelInferRequest>> requests =
      MakeOipGrpcRequests(spec, {Encoded("JPEG"), Pixels(4, 2)});
  ASSERT_TRUE(requests.ok());
  ASSERT_EQ(requests->size(), 6u);  // 2 images x (2 + 1) model shares
  const std::vector<std::string> models = {"small", "small", "large"};
  for (size_t i = 0; i < requests->size(); ++i) {
    const inference::ModelInferRequest& r = (*requests)[i];
    EXPECT_EQ(r.model_name(), models[i % 3]);
    ASSERT_EQ(r.inputs_size(), 1);
    ASSERT_EQ(r.raw_input_contents_size(), 1);
    ASSERT_EQ(r.outputs_size(), 2);
    EXPECT_EQ(r.outputs(1).name(), "PATCH_TOKENS");
    EXPECT_EQ(r.outputs(1).parameters().at("datatype").string_param(), "FP16");
    EXPECT_EQ(r.parameters().at("height").int64_param(), 64);
    EXPECT_EQ(r.parameters().at("width").int64_param(), 48);
  }
  const inference::ModelInferRequest& file = (*requests)[0];
  EXPECT_EQ(file.inputs(0).name(), "IMAGE");
  EXPECT_EQ(file.inputs(0).datatype(), "BYTES");
  EXPECT_EQ(file.inputs(0).shape_size(), 1);
  EXPECT_EQ(file.inputs(0).shape(0), 3);
  EXPECT_EQ(file.raw_input_contents(0).size(), 3u * (4 + 4));
  const inference::ModelInferRequest& raw = (*requests)[3];
  EXPECT_EQ(raw.inputs(0).name(), "PIXELS");
  EXPECT_EQ(raw.inputs(0).datatype(), "UINT8");
  EXPECT_EQ(raw.raw_input_contents(0).size(), 3u * 2 * 4 * 3);

  spec = RequestSpec{};
  requests = MakeOipGrpcRequests(spec, {Encoded("JPEG")});
  ASSERT_TRUE(requests.ok());
  ASSERT_EQ(requests->size(), 1u);
  EXPECT_EQ((*requests)[0].model_name(), "");
  EXPECT_EQ((*requests)[0].outputs_size(), 2);
  EXPECT_TRUE((*requests)[0].parameters().empty());
}

TEST(OipRestRequestsTest, BinaryBodyWithItsHeaderLength) {
  RequestSpec spec{.images_per_request = 2,
                   .outputs = {v1::REGISTERS},
                   .dtype = v1::BFLOAT16,
                   .resize_height = 32};
  EXPECT_EQ(MakeOipRestRequests(spec, {Encoded("JPEG")}).status().code(),
            absl::StatusCode::kInvalidArgument);  // no model: no path
  spec.models = {{"my model", 1}};
  absl::StatusOr<std::vector<HttpRequest>> requests = MakeOipRestRequests(spec, {Encoded("JPEG")});
  ASSERT_TRUE(requests.ok());
  ASSERT_EQ(requests->size(), 1u);
  const HttpRequest& request = (*requests)[0];
  EXPECT_EQ(request.path, "/v2/models/my%20model/infer");
  EXPECT_EQ(request.content_type, "application/octet-stream");
  EXPECT_EQ(request.images, 2);
  ASSERT_EQ(request.headers.size(), 1u);
  EXPECT_EQ(request.headers[0].first, "Inference-Header-Content-Length");
  size_t length = 0;
  ASSERT_TRUE(absl::SimpleAtoi(request.headers[0].second, &length));
  const json header = json::parse(request.body.substr(0, length));
  const std::string binary = request.body.substr(length);
  EXPECT_EQ(binary, std::string("\x04\0\0\0JPEG\x04\0\0\0JPEG", 16));
  EXPECT_EQ(header["inputs"][0]["name"], "IMAGE");
  EXPECT_EQ(header["inputs"][0]["datatype"], "BYTES");
  EXPECT_EQ(header["inputs"][0]["shape"], json::array({2}));
  EXPECT_EQ(header["inputs"][0]["parameters"]["binary_data_size"], binary.size());
  EXPECT_EQ(header["outputs"], json::parse(R"([{"name":"REGISTERS","parameters":{"binary_data":true,
                            "datatype":"BF16"}}])"));
  EXPECT_EQ(header["parameters"], json({{"height", 32}}));
}

ResponseHead Head(size_t header_length) {
  ResponseHead head;
  head.status = 200;
  head.headers["inference-header-content-length"] = absl::StrCat(header_length);
  return head;
}

std::string Answer(const json& header, const std::string& binary, ResponseHead& head) {
  const std::string text = header.dump();
  head = Head(text.size());
  return text + binary;
}

TEST(OipRestRequestsTest, AnswerCheck) {
  const std::vector<OipOutput> asked = {{"CLS", "FP32"}, {"PATCH_TOKENS", "FP32"}};
  const json cls = {{"name", "CLS"},
                    {"datatype", "FP32"},
                    {"shape", {2, 4}},
                    {"parameters", {{"binary_data_size", 32}}}};
  json tokens = {{"name", "PATCH_TOKENS"},
                 {"datatype", "FP32"},
                 {"shape", {2, 3, 4}},
                 {"parameters", {{"binary_data_size", 96}}}};
  ResponseHead head;
  std::string body = Answer({{"outputs", {cls, tokens}}}, std::string(128, 'x'), head);
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, head, body), "");
  EXPECT_EQ(CheckOipRestAnswer(asked, 1, head, body), kBadResponse);        // images
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, head, body + "x"), kBadResponse);  // extra bytes
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, ResponseHead{.status = 200}, body), kBadResponse);
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, Head(body.size() + 1), body), kBadResponse);
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, Head(3), body), kBadResponse);  // not JSON

  body = Answer({{"outputs", {cls}}}, std::string(32, 'x'), head);
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, head, body), kBadResponse);  // an output missing
  json in_json = tokens;
  in_json["parameters"] = json::object();
  in_json["data"] = json::array();
  body = Answer({{"outputs", {cls, in_json}}}, std::string(32, 'x'), head);
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, head, body), kBadResponse);  // not in binary
  tokens["datatype"] = 7;
  body = Answer({{"outputs", {cls, tokens}}}, std::string(128, 'x'), head);
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, head, body), kBadResponse);  // wrong type, no throw
  body = Answer({{"outputs", 5}}, "", head);
  EXPECT_EQ(CheckOipRestAnswer(asked, 2, head, body), kBadResponse);
}

TEST(OpenAITest, SniffsTheImageType) {
  EXPECT_EQ(SniffImageMediaType("\xFF\xD8\xFF\xE0rest"), "image/jpeg");
  EXPECT_EQ(SniffImageMediaType("\x89PNG\r\n\x1A\nrest"), "image/png");
  EXPECT_EQ(SniffImageMediaType(std::string("RIFF\x10\0\0\0WEBPVP8 ", 16)), "image/webp");
  EXPECT_EQ(SniffImageMediaType(std::string("BM\x36\0", 4)), "image/bmp");
  EXPECT_EQ(SniffImageMediaType("GIF89a"), "");
  EXPECT_EQ(SniffImageMediaType(""), "");
  EXPECT_EQ(SniffImageMediaType("RIFF"), "");
}

TEST(OpenAITest, CountsEmbeddingsByTheirIndexKeys) {
  EXPECT_EQ(CountEmbeddings(R"({"object":"list","data":[{"object":"embedding","index":0,)"
                            R"("embedding":"AAAA"},{"index" : 1,"embedding":[1.0]}],)"
                            R"("model":"index","usage":{}})"),
            2);
  EXPECT_EQ(CountEmbeddings(R"({"error":{"message":"bad"}})"), 0);
  EXPECT_EQ(CountEmbeddings(""), 0);
}

TEST(OpenAITest, BodiesCarryDataUrlsAndTheEncoding) {
  const std::string png = "\x89PNG\r\n\x1A\nDATA";
  RequestSpec spec{
      .images_per_request = 3, .outputs = {v1::POOLED}, .models = {{"a", 1}, {"b", 1}}};
  absl::StatusOr<std::vector<HttpRequest>> requests =
      MakeOpenAIRequests(spec, {Encoded(png)}, OpenAIEncoding::kFloat);
  ASSERT_TRUE(requests.ok());
  ASSERT_EQ(requests->size(), 2u);
  EXPECT_EQ((*requests)[0].path, "/v1/embeddings");
  EXPECT_EQ((*requests)[0].content_type, "application/json");
  EXPECT_EQ((*requests)[0].images, 3);
  const json body = json::parse((*requests)[1].body);
  EXPECT_EQ(body["model"], "b");
  EXPECT_EQ(body["encoding_format"], "float");
  EXPECT_EQ(body["output"], "pooled");
  const std::string url = "data:image/png;base64," + absl::Base64Escape(png);
  EXPECT_EQ(body["input"], json({url, url, url}));

  spec = RequestSpec{};
  requests = MakeOpenAIRequests(spec, {Encoded("\xFF\xD8\xFFJ")}, OpenAIEncoding::kBase64);
  ASSERT_TRUE(requests.ok());
  const json plain = json::parse((*requests)[0].body);
  EXPECT_EQ(plain["model"], "");
  EXPECT_EQ(plain["encoding_format"], "base64");
  EXPECT_FALSE(plain.contains("output"));
  EXPECT_TRUE(absl::StartsWith(plain["input"][0].get<std::string>(), "data:image/jpeg;base64,"));
}

TEST(OpenAITest, RefusesWhatOpenAICannotCarry) {
  const auto refused = [](RequestSpec spec, const v1::Image& image) {
    return MakeOpenAIRequests(spec, {image}, OpenAIEncoding::kBase64).status().code() ==
           absl::StatusCode::kInvalidArgument;
  };
  const v1::Image jpeg = Encoded("\xFF\xD8\xFFJ");
  EXPECT_TRUE(refused({}, Pixels(2, 2)));
  EXPECT_TRUE(refused({}, Encoded("GIF89a")));
  EXPECT_TRUE(refused({.outputs = {v1::PATCH_TOKENS}}, jpeg));
  EXPECT_TRUE(refused({.outputs = {v1::CLS, v1::POOLED}}, jpeg));
  EXPECT_TRUE(refused({.dtype = v1::FLOAT16}, jpeg));
  EXPECT_TRUE(refused({.resize_height = 32, .resize_width = 32}, jpeg));
  EXPECT_FALSE(refused({.outputs = {v1::CLS}}, jpeg));
}

}  // namespace
}  // namespace dinov3::bench
