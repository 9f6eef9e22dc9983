// The REST encoding of the Open Inference Protocol (rest_json.h): parsing a request as JSON only
// and with the binary tensor data extension (header length, binary_data_size per input, BYTES
// elements with 4-byte lengths), every refusal naming what is wrong (offsets and sizes against
// the body, missing fields, shapes, UINT8 values, base64, parameters), and serializing a
// response with each output in binary or as JSON numbers (FP32, FP16 and BF16 values).
#include "server/kserve/rest_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace dinov3::kserve {
namespace {

using ::nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int kDepth = 32;

absl::StatusOr<RestInferRequest> ParseJson(const json& body) {
  return ParseRestInferRequest(body.dump(), nullptr, kDepth);
}

// A body of the binary data extension: `header` as JSON, then `binary`, with the header length
// (Inference-Header-Content-Length) the JSON's.
absl::StatusOr<RestInferRequest> ParseBinary(const json& header, const std::string& binary) {
  const std::string text = header.dump();
  const std::string length = std::to_string(text.size());
  return ParseRestInferRequest(text + binary, &length, kDepth);
}

// A BYTES element of the binary form: a 4-byte little-endian length, then the bytes.
std::string Element(const std::string& bytes) {
  const uint32_t n = static_cast<uint32_t>(bytes.size());
  std::string out = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                     static_cast<char>((n >> 16) & 0xff), static_cast<char>(n >> 24)};
  return out + bytes;
}

json PixelsJson(json data, json shape = {1, 1, 2, 3}) {
  return {{"name", "PIXELS"}, {"datatype", "UINT8"}, {"shape", shape}, {"data", data}};
}

// {"inputs": [...]}. A vector, not a json: a braced list of one json is an array of it with g++
// but a copy of it with clang.
json Request(std::vector<json> inputs) { return {{"inputs", json(std::move(inputs))}}; }

// The status of `result` is InvalidArgument and its message holds every one of `parts`.
void ExpectInvalid(const absl::StatusOr<RestInferRequest>& result,
                   const std::vector<std::string>& parts) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  for (const std::string& part : parts) {
    EXPECT_THAT(result.status().message(), HasSubstr(part));
  }
}

TEST(RestJsonRequestTest, JsonOnlyRequest) {
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 255})});
  body["id"] = "req-1";
  body["parameters"] = {{"datatype", "FP16"}, {"binary_data_output", true}};
  body["outputs"] = {{{"name", "CLS"}}, {{"name", "REGISTERS"}}};
  absl::StatusOr<RestInferRequest> out = ParseJson(body);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->request.id, "req-1");
  EXPECT_EQ(std::get<std::string>(out->request.parameters.at("datatype")), "FP16");
  EXPECT_TRUE(out->binary_default);
  EXPECT_TRUE(out->binary_outputs.empty());
  ASSERT_EQ(out->request.inputs.size(), 1u);
  const InputTensor& pixels = out->request.inputs[0];
  EXPECT_EQ(pixels.name, "PIXELS");
  EXPECT_EQ(pixels.datatype, "UINT8");
  EXPECT_THAT(pixels.shape, ElementsAre(1, 1, 2, 3));
  EXPECT_TRUE(pixels.has_raw);
  EXPECT_EQ(pixels.raw, std::string("\x00\x01\x02\x03\x04\xff", 6));
  ASSERT_EQ(out->request.outputs.size(), 2u);
  EXPECT_EQ(out->request.outputs[0].name, "CLS");
  EXPECT_EQ(out->request.outputs[1].name, "REGISTERS");
}

TEST(RestJsonRequestTest, WithoutParametersNothingIsBinary) {
  absl::StatusOr<RestInferRequest> out = ParseJson(Request({PixelsJson({0, 1, 2, 3, 4, 5})}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->binary_default);
  EXPECT_TRUE(out->request.id.empty());
  EXPECT_TRUE(out->request.parameters.empty());
  EXPECT_TRUE(out->request.outputs.empty());
}

TEST(RestJsonRequestTest, NestedDataArraysAreFlattened) {
  absl::StatusOr<RestInferRequest> out =
      ParseJson(Request({PixelsJson({{{{0, 1, 2}, {3, 4, 5}}}})}));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->request.inputs[0].raw, std::string("\x00\x01\x02\x03\x04\x05", 6));
}

TEST(RestJsonRequestTest, BinaryExtensionRequest) {
  const std::string binary =
      Element("first image") + Element("") + Element("third") + "\x07\x08\x09";
  json header = Request({{{"name", "IMAGE"},
                          {"datatype", "BYTES"},
                          {"shape", {3}},
                          {"parameters", {{"binary_data_size", binary.size() - 3}}}},
                         {{"name", "PIXELS"},
                          {"datatype", "UINT8"},
                          {"shape", {1, 1, 1, 3}},
                          {"parameters", {{"binary_data_size", 3}}}}});
  absl::StatusOr<RestInferRequest> out = ParseBinary(header, binary);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->request.inputs.size(), 2u);
  EXPECT_TRUE(out->request.inputs[0].has_raw);
  EXPECT_EQ(out->request.inputs[0].raw, binary.substr(0, binary.size() - 3));
  EXPECT_TRUE(out->request.inputs[0].elements.empty());
  EXPECT_THAT(out->request.inputs[0].shape, ElementsAre(3));
  EXPECT_TRUE(out->request.inputs[1].has_raw);
  EXPECT_EQ(out->request.inputs[1].raw, "\x07\x08\x09");
}

TEST(RestJsonRequestTest, BinaryAndJsonInputsMix) {
  json header = Request({{{"name", "IMAGE"},
                          {"datatype", "BYTES"},
                          {"shape", {1}},
                          {"parameters", {{"binary_data_size", 9}}}},
                         PixelsJson({1, 2, 3}, {1, 1, 1, 3})});
  absl::StatusOr<RestInferRequest> out = ParseBinary(header, Element("abcde"));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->request.inputs[0].raw, Element("abcde"));
  EXPECT_EQ(out->request.inputs[1].raw, "\x01\x02\x03");
}

TEST(RestJsonRequestTest, HeaderLengthMustBeWithinTheBody) {
  const std::string body = Request({PixelsJson({0, 1, 2, 3, 4, 5})}).dump();
  for (const std::string& length :
       {std::to_string(body.size() + 1), std::string("-1"), std::string("abc"), std::string("")}) {
    ExpectInvalid(ParseRestInferRequest(body, &length, kDepth),
                  {"Inference-Header-Content-Length", "'" + length + "'"});
  }
  const std::string exact = std::to_string(body.size());
  EXPECT_TRUE(ParseRestInferRequest(body, &exact, kDepth).ok());
}

TEST(RestJsonRequestTest, ShortHeaderLengthCutsTheJson) {
  const std::string body = Request({PixelsJson({0, 1, 2, 3, 4, 5})}).dump();
  const std::string length = std::to_string(body.size() - 1);
  ExpectInvalid(ParseRestInferRequest(body, &length, kDepth), {"not valid JSON"});
}

TEST(RestJsonRequestTest, BinaryDataSizePastTheEnd) {
  json header = Request({{{"name", "IMAGE"},
                          {"datatype", "BYTES"},
                          {"shape", {1}},
                          {"parameters", {{"binary_data_size", 10}}}}});
  ExpectInvalid(ParseBinary(header, Element("ab")),
                {"inputs[0] (IMAGE)", "binary_data_size 10 runs past the end", "6 bytes"});
  // The second input's size is checked against what the first one left.
  json two = Request({{{"name", "IMAGE"},
                       {"datatype", "BYTES"},
                       {"shape", {1}},
                       {"parameters", {{"binary_data_size", 6}}}},
                      {{"name", "PIXELS"},
                       {"datatype", "UINT8"},
                       {"shape", {1, 1, 1, 3}},
                       {"parameters", {{"binary_data_size", 3}}}}});
  ExpectInvalid(ParseBinary(two, Element("ab") + "xy"),
                {"inputs[1] (PIXELS)", "binary_data_size 3 runs past", "2 bytes"});
}

TEST(RestJsonRequestTest, BinaryDataSizeWithoutHeaderLengthRunsPastTheEnd) {
  json body = Request({{{"name", "IMAGE"},
                        {"datatype", "BYTES"},
                        {"shape", {1}},
                        {"parameters", {{"binary_data_size", 5}}}}});
  ExpectInvalid(ParseJson(body), {"inputs[0] (IMAGE)", "runs past the end"});
}

TEST(RestJsonRequestTest, LeftoverBytesAreRefused) {
  json header = Request({{{"name", "PIXELS"},
                          {"datatype", "UINT8"},
                          {"shape", {1, 1, 1, 3}},
                          {"parameters", {{"binary_data_size", 3}}}}});
  ExpectInvalid(ParseBinary(header, "abcde"), {"2 bytes of binary data", "binary_data_size"});
  // Binary data after a JSON-only input.
  ExpectInvalid(ParseBinary(Request({PixelsJson({1, 2, 3}, {1, 1, 1, 3})}), "z"),
                {"1 bytes of binary data"});
}

TEST(RestJsonRequestTest, NegativeBinaryDataSizeIsRefused) {
  json header = Request({{{"name", "IMAGE"},
                          {"datatype", "BYTES"},
                          {"shape", {1}},
                          {"parameters", {{"binary_data_size", -1}}}}});
  ExpectInvalid(ParseBinary(header, "abcd"), {"inputs[0] (IMAGE)", "non-negative integer"});
  header["inputs"][0]["parameters"]["binary_data_size"] = "4";
  ExpectInvalid(ParseBinary(header, "abcd"), {"inputs[0] (IMAGE)", "non-negative integer"});
}

TEST(RestJsonRequestTest, DataAndBinaryDataSizeTogetherAreRefused) {
  json header = Request({{{"name", "PIXELS"},
                          {"datatype", "UINT8"},
                          {"shape", {1, 1, 1, 3}},
                          {"data", {1, 2, 3}},
                          {"parameters", {{"binary_data_size", 3}}}}});
  ExpectInvalid(ParseBinary(header, "abc"),
                {"inputs[0] (PIXELS)", "both 'data' and binary_data_size"});
}

TEST(RestJsonRequestTest, NoDataIsRefused) {
  ExpectInvalid(ParseJson(Request({{{"name", "IMAGE"}, {"datatype", "BYTES"}, {"shape", {1}}}})),
                {"inputs[0] (IMAGE)", "needs 'data' or parameters.binary_data_size"});
}

TEST(RestJsonRequestTest, MissingNameDatatypeOrShape) {
  const json full = PixelsJson({1, 2, 3}, {1, 1, 1, 3});
  for (const auto& [field, message] :
       std::vector<std::pair<std::string, std::string>>{{"name", "needs a string 'name'"},
                                                        {"datatype", "needs a string 'datatype'"},
                                                        {"shape", "needs a 'shape' array"}}) {
    json input = full;
    input.erase(field);
    ExpectInvalid(ParseJson(Request({input})), {"inputs[0]", message});
    input[field] = 7;  // present, of the wrong type
    ExpectInvalid(ParseJson(Request({input})), {"inputs[0]", message});
  }
  ExpectInvalid(ParseJson(Request({full, 5})), {"inputs[1]", "must be an object"});
}

TEST(RestJsonRequestTest, NegativeOrNonIntegerShapeIsRefused) {
  for (const json& shape : {json{1, -1, 2, 3}, json{1, 1.5, 2, 3}, json{1, "2", 2, 3}}) {
    ExpectInvalid(ParseJson(Request({PixelsJson({0, 1, 2, 3, 4, 5}, shape)})),
                  {"inputs[0] (PIXELS)", "shape must hold non-negative integers"});
  }
}

TEST(RestJsonRequestTest, Uint8ValuesMustFit) {
  ExpectInvalid(ParseJson(Request({PixelsJson({0, 256, 2, 3, 4, 5})})),
                {"inputs[0] (PIXELS).data[1]", "from 0 to 255"});
  ExpectInvalid(ParseJson(Request({PixelsJson({0, 1, -1, 3, 4, 5})})),
                {"inputs[0] (PIXELS).data[2]", "from 0 to 255"});
  ExpectInvalid(ParseJson(Request({PixelsJson({0, 1, 2, 3.5, 4, 5})})),
                {"inputs[0] (PIXELS).data[3]", "from 0 to 255"});
  ExpectInvalid(ParseJson(Request({PixelsJson({0, 1, 2, 3, 4, "5"})})),
                {"inputs[0] (PIXELS).data[5]", "from 0 to 255"});
}

TEST(RestJsonRequestTest, Uint8CountMustMatchTheShape) {
  ExpectInvalid(ParseJson(Request({PixelsJson({0, 1, 2, 3, 4})})), {"PIXELS", "shape"});
}

TEST(RestJsonRequestTest, JsonDataOfAnotherDatatypeIsRefused) {
  json input = PixelsJson({0.5, 1, 2});
  input["datatype"] = "FP32";
  ExpectInvalid(ParseJson(Request({input})), {"inputs[0] (PIXELS)", "datatype FP32"});
}

TEST(RestJsonRequestTest, JsonImageIsBase64OrADataUrl) {
  // "hello" and the bytes 00 ff 10 in base64.
  json body = Request({{{"name", "IMAGE"},
                        {"datatype", "BYTES"},
                        {"shape", {2}},
                        {"data", {"aGVsbG8=", "data:image/png;base64,AP8Q"}}}});
  absl::StatusOr<RestInferRequest> out = ParseJson(body);
  ASSERT_TRUE(out.ok()) << out.status();
  const InputTensor& image = out->request.inputs[0];
  EXPECT_FALSE(image.has_raw);
  EXPECT_THAT(image.elements, ElementsAre("hello", std::string("\x00\xff\x10", 3)));
}

TEST(RestJsonRequestTest, JsonImageNotBase64IsRefused) {
  json body = Request({{{"name", "IMAGE"},
                        {"datatype", "BYTES"},
                        {"shape", {2}},
                        {"data", {"aGVsbG8=", "not base64 at all!"}}}});
  ExpectInvalid(ParseJson(body), {"inputs[0] (IMAGE).data[1]", "not base64"});
  body["inputs"][0]["data"][1] = 42;
  ExpectInvalid(ParseJson(body), {"inputs[0] (IMAGE).data[1]", "must be a string"});
}

TEST(RestJsonRequestTest, ParametersOfEveryJsonType) {
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
  body["parameters"] = {{"flag", true},  {"count", -3}, {"big", 7000000000},
                        {"ratio", 0.25}, {"name", "x"}, {"binary_data_output", false}};
  body["inputs"][0]["parameters"] = {{"tag", "t"}, {"n", 2}};
  absl::StatusOr<RestInferRequest> out = ParseJson(body);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->request.parameters,
              UnorderedElementsAre(Pair("flag", ParameterValue(true)),
                                   Pair("count", ParameterValue(int64_t{-3})),
                                   Pair("big", ParameterValue(int64_t{7000000000})),
                                   Pair("ratio", ParameterValue(0.25)),
                                   Pair("name", ParameterValue(std::string("x"))),
                                   Pair("binary_data_output", ParameterValue(false))));
  EXPECT_FALSE(out->binary_default);
  EXPECT_THAT(out->request.inputs[0].parameters,
              UnorderedElementsAre(Pair("tag", ParameterValue(std::string("t"))),
                                   Pair("n", ParameterValue(int64_t{2}))));
}

TEST(RestJsonRequestTest, ObjectArrayAndNullParametersAreRefused) {
  for (const json& value : {json::object({{"a", 1}}), json::array({1}), json(nullptr)}) {
    json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
    body["parameters"] = {{"nested", value}};
    ExpectInvalid(ParseJson(body), {"parameters.nested", "boolean, number or string"});
    body.erase("parameters");
    body["inputs"][0]["parameters"] = {{"nested", value}};
    ExpectInvalid(ParseJson(body), {"inputs[0] (PIXELS).parameters.nested"});
    body["inputs"][0].erase("parameters");
    body["outputs"] = {{{"name", "CLS"}, {"parameters", {{"nested", value}}}}};
    ExpectInvalid(ParseJson(body), {"outputs[0].parameters.nested"});
  }
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
  body["parameters"] = json::array();
  ExpectInvalid(ParseJson(body), {"parameters", "must be an object"});
}

TEST(RestJsonRequestTest, IntegersBeyondInt64AreRefusedNotWrapped) {
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
  body["parameters"] = {{"priority", uint64_t{9223372036854775808u}}};
  ExpectInvalid(ParseJson(body), {"parameters.priority", "9223372036854775808 is too large"});
  body["parameters"] = {{"priority", uint64_t{9223372036854775807u}}};
  absl::StatusOr<RestInferRequest> out = ParseJson(body);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(std::get<int64_t>(out->request.parameters.at("priority")), INT64_MAX);
  body.erase("parameters");
  body["inputs"][0]["parameters"] = {{"binary_data_size", uint64_t{18446744073709551615u}}};
  body["inputs"][0].erase("data");
  ExpectInvalid(ParseJson(body), {"inputs[0] (PIXELS).parameters.binary_data_size", "too large"});
}

TEST(RestJsonRequestTest, BinaryDataOutputMustBeABoolean) {
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
  body["parameters"] = {{"binary_data_output", 1}};
  ExpectInvalid(ParseJson(body), {"parameters.binary_data_output", "boolean"});
}

TEST(RestJsonRequestTest, OutputsWithBinaryData) {
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
  body["parameters"] = {{"binary_data_output", true}};
  body["outputs"] = {{{"name", "CLS"}, {"parameters", {{"binary_data", true}}}},
                     {{"name", "POOLED"}, {"parameters", {{"binary_data", false}}}},
                     {{"name", "PATCH_TOKENS"}, {"parameters", {{"datatype", "BF16"}}}}};
  absl::StatusOr<RestInferRequest> out = ParseJson(body);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->binary_default);
  EXPECT_THAT(out->binary_outputs, UnorderedElementsAre(Pair("CLS", true), Pair("POOLED", false)));
  ASSERT_EQ(out->request.outputs.size(), 3u);
  EXPECT_EQ(out->request.outputs[2].name, "PATCH_TOKENS");
  EXPECT_EQ(std::get<std::string>(out->request.outputs[2].parameters.at("datatype")), "BF16");
}

TEST(RestJsonRequestTest, BadOutputsAreRefused) {
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
  body["outputs"] = {{{"parameters", {{"binary_data", true}}}}};
  ExpectInvalid(ParseJson(body), {"outputs[0]", "string 'name'"});
  body["outputs"] = {{{"name", "CLS"}}, "POOLED"};
  ExpectInvalid(ParseJson(body), {"outputs[1]", "string 'name'"});
  body["outputs"] = {{{"name", "CLS"}, {"parameters", {{"binary_data", "yes"}}}}};
  ExpectInvalid(ParseJson(body), {"outputs[0].parameters.binary_data"});
  body["outputs"] = "CLS";
  ExpectInvalid(ParseJson(body), {"outputs", "must be an array"});
}

TEST(RestJsonRequestTest, BadBodiesAreRefused) {
  ExpectInvalid(ParseRestInferRequest("{\"inputs\": [", nullptr, kDepth), {"not valid JSON"});
  ExpectInvalid(ParseRestInferRequest("[1, 2]", nullptr, kDepth), {"JSON object"});
  ExpectInvalid(ParseJson(json::object()), {"inputs", "non-empty array"});
  ExpectInvalid(ParseJson(Request({})), {"inputs", "non-empty array"});
  json body = Request({PixelsJson({0, 1, 2, 3, 4, 5})});
  body["id"] = 5;
  ExpectInvalid(ParseJson(body), {"id", "must be a string"});
}

TEST(RestJsonRequestTest, NestingDeeperThanTheLimitIsRefused) {
  json data = 1;
  for (int i = 0; i < kDepth + 2; ++i) data = json::array({data});
  ExpectInvalid(ParseJson(Request({PixelsJson(data, {1})})), {"deeper than 32"});
}

// ---- Responses.

std::string Floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

std::string Halves(const std::vector<uint16_t>& bits) {
  return std::string(reinterpret_cast<const char*>(bits.data()), bits.size() * 2);
}

OutputTensor Output(std::string name, std::string datatype, std::vector<int64_t> shape,
                    std::string data) {
  OutputTensor t;
  t.name = std::move(name);
  t.datatype = std::move(datatype);
  t.shape = std::move(shape);
  t.data = std::move(data);
  return t;
}

const std::vector<float> kFp32 = {1.5f, -2.0f, 0.1f, 3.4028235e38f};
// FP16: 1, -2, 65504 (the largest), 2^-24 (the smallest subnormal), 2^-14 (the smallest normal),
// 0.333251953125 (0x3555).
const std::vector<uint16_t> kFp16 = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555};
const std::vector<double> kFp16Values = {
    1.0, -2.0, 65504.0, 5.9604644775390625e-08, 6.103515625e-05, 0.333251953125};
// BF16: 1, 3.140625, -123.5, 1.1754943508222875e-38 (2^-126), 0.
const std::vector<uint16_t> kBf16 = {0x3f80, 0x4049, 0xc2f7, 0x0080, 0x0000};
const std::vector<double> kBf16Values = {1.0, 3.140625, -123.5, 1.1754943508222875e-38, 0.0};

InferenceResponse Response() {
  InferenceResponse r;
  r.model_name = "m";
  r.model_version = "1";
  r.id = "id-9";
  r.outputs.push_back(Output("CLS", "FP32", {2, 2}, Floats(kFp32)));
  r.outputs.push_back(Output("POOLED", "FP16", {2, 3}, Halves(kFp16)));
  r.outputs.push_back(Output("PATCH_TOKENS", "BF16", {1, 5, 1}, Halves(kBf16)));
  r.outputs.back().parameters["grid_height"] = int64_t{1};
  r.outputs.back().parameters["grid_width"] = int64_t{5};
  return r;
}

RestInferRequest Encoding(bool binary_default, std::map<std::string, bool, std::less<>> outputs) {
  RestInferRequest encoding;
  encoding.binary_default = binary_default;
  encoding.binary_outputs = std::move(outputs);
  return encoding;
}

// The JSON header of `body` (all of it, or its first header_length bytes).
json Header(const RestBody& body) {
  return json::parse(body.header_length < 0 ? body.body : body.body.substr(0, body.header_length));
}

const json& OutputNamed(const json& header, const std::string& name) {
  for (const json& output : header.at("outputs")) {
    if (output.at("name") == name) return output;
  }
  ADD_FAILURE() << "no output " << name << " in " << header.dump();
  static const json kNone;
  return kNone;
}

std::vector<double> Numbers(const json& output) {
  std::vector<double> out;
  for (const json& v : output.at("data")) out.push_back(v.get<double>());
  return out;
}

TEST(RestJsonResponseTest, AllJsonByDefault) {
  RestBody body = SerializeRestInferResponse(Response(), Encoding(false, {}));
  EXPECT_EQ(body.content_type, "application/json");
  EXPECT_EQ(body.header_length, -1);
  const json header = json::parse(body.body);
  EXPECT_EQ(header.at("model_name"), "m");
  EXPECT_EQ(header.at("model_version"), "1");
  EXPECT_EQ(header.at("id"), "id-9");
  ASSERT_EQ(header.at("outputs").size(), 3u);
  EXPECT_EQ(header["outputs"][0].at("name"), "CLS");
  EXPECT_EQ(header["outputs"][1].at("name"), "POOLED");
  EXPECT_EQ(header["outputs"][2].at("name"), "PATCH_TOKENS");
  const json& cls = OutputNamed(header, "CLS");
  EXPECT_EQ(cls.at("datatype"), "FP32");
  EXPECT_EQ(cls.at("shape"), json({2, 2}));
  EXPECT_FALSE(cls.contains("parameters"));
  // FP32 numbers read back as the same floats (written as the doubles they are).
  std::vector<double> expected(kFp32.begin(), kFp32.end());
  EXPECT_EQ(Numbers(cls), expected);
  EXPECT_EQ(Numbers(OutputNamed(header, "POOLED")), kFp16Values);
  const json& patches = OutputNamed(header, "PATCH_TOKENS");
  EXPECT_EQ(patches.at("datatype"), "BF16");
  EXPECT_EQ(Numbers(patches), kBf16Values);
  EXPECT_EQ(patches.at("parameters"), json({{"grid_height", 1}, {"grid_width", 5}}));
}

TEST(RestJsonResponseTest, AllBinaryByTheDefault) {
  RestBody body = SerializeRestInferResponse(Response(), Encoding(true, {}));
  EXPECT_EQ(body.content_type, "application/octet-stream");
  ASSERT_GE(body.header_length, 0);
  const std::string binary = Floats(kFp32) + Halves(kFp16) + Halves(kBf16);
  ASSERT_EQ(body.body.size(), static_cast<size_t>(body.header_length) + binary.size());
  EXPECT_EQ(body.body.substr(body.header_length), binary);
  const json header = Header(body);
  // The header length is the JSON's own: it is the JSON text exactly, no more, no less.
  EXPECT_EQ(header.dump(), body.body.substr(0, body.header_length));
  for (const auto& [name, size] : std::vector<std::pair<std::string, size_t>>{
           {"CLS", 16}, {"POOLED", 12}, {"PATCH_TOKENS", 10}}) {
    const json& output = OutputNamed(header, name);
    EXPECT_FALSE(output.contains("data")) << name;
    EXPECT_EQ(output.at("parameters").at("binary_data_size"), size) << name;
  }
  EXPECT_EQ(OutputNamed(header, "PATCH_TOKENS").at("parameters").at("grid_width"), 5);
}

TEST(RestJsonResponseTest, EachOutputsOwnChoiceOverridesTheDefault) {
  RestBody body = SerializeRestInferResponse(
      Response(), Encoding(true, {{"POOLED", false}, {"PATCH_TOKENS", true}}));
  ASSERT_GE(body.header_length, 0);
  EXPECT_EQ(body.body.substr(body.header_length), Floats(kFp32) + Halves(kBf16));
  const json header = Header(body);
  EXPECT_EQ(OutputNamed(header, "CLS").at("parameters").at("binary_data_size"), 16);
  EXPECT_EQ(Numbers(OutputNamed(header, "POOLED")), kFp16Values);
  EXPECT_EQ(OutputNamed(header, "PATCH_TOKENS").at("parameters").at("binary_data_size"), 10);

  body = SerializeRestInferResponse(Response(), Encoding(false, {{"POOLED", true}}));
  EXPECT_EQ(body.content_type, "application/octet-stream");
  ASSERT_GE(body.header_length, 0);
  EXPECT_EQ(body.body.substr(body.header_length), Halves(kFp16));
  const json mixed = Header(body);
  EXPECT_EQ(mixed.dump(), body.body.substr(0, body.header_length));
  EXPECT_EQ(Numbers(OutputNamed(mixed, "PATCH_TOKENS")), kBf16Values);
  EXPECT_EQ(OutputNamed(mixed, "POOLED").at("parameters").at("binary_data_size"), 12);
}

TEST(RestJsonResponseTest, EveryOutputAskedAsJsonGivesAJsonBody) {
  RestBody body = SerializeRestInferResponse(
      Response(), Encoding(true, {{"CLS", false}, {"POOLED", false}, {"PATCH_TOKENS", false}}));
  EXPECT_EQ(body.content_type, "application/json");
  EXPECT_EQ(body.header_length, -1);
  EXPECT_EQ(Numbers(OutputNamed(json::parse(body.body), "CLS")).size(), 4u);
}

TEST(RestJsonResponseTest, NoIdWithoutOne) {
  InferenceResponse response = Response();
  response.id.clear();
  RestBody body = SerializeRestInferResponse(std::move(response), Encoding(false, {}));
  EXPECT_FALSE(json::parse(body.body).contains("id"));
}

TEST(RestJsonResponseTest, Fp16JsonNumbersDecodeEveryHalf) {
  // Every finite FP16 value, with its sign: the JSON number is the value the bits stand for.
  std::vector<uint16_t> bits;
  for (uint32_t b = 0; b < 0x10000; ++b) {
    if (((b >> 10) & 0x1f) != 0x1f) bits.push_back(static_cast<uint16_t>(b));
  }
  InferenceResponse response;
  response.outputs.push_back(
      Output("CLS", "FP16", {1, static_cast<int64_t>(bits.size())}, Halves(bits)));
  RestBody body = SerializeRestInferResponse(std::move(response), Encoding(false, {}));
  const std::vector<double> numbers = Numbers(json::parse(body.body)["outputs"][0]);
  ASSERT_EQ(numbers.size(), bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    const int exponent = (bits[i] >> 10) & 0x1f;
    const double mantissa = bits[i] & 0x3ff;
    const double magnitude =
        exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024.0 + mantissa, exponent - 25);
    const double expected = (bits[i] & 0x8000) ? -magnitude : magnitude;
    ASSERT_EQ(numbers[i], expected) << "bits " << bits[i];
    ASSERT_EQ(std::signbit(numbers[i]), (bits[i] & 0x8000) != 0) << "bits " << bits[i];
  }
}

TEST(RestJsonResponseTest, Bf16JsonNumbersAreTheFloatsOfTheTopBits) {
  std::vector<uint16_t> bits;
  for (uint32_t b = 0; b < 0x10000; b += 7) {
    if (((b >> 7) & 0xff) != 0xff) bits.push_back(static_cast<uint16_t>(b));  // finite
  }
  InferenceResponse response;
  response.outputs.push_back(
      Output("CLS", "BF16", {static_cast<int64_t>(bits.size())}, Halves(bits)));
  RestBody body = SerializeRestInferResponse(std::move(response), Encoding(false, {}));
  const std::vector<double> numbers = Numbers(json::parse(body.body)["outputs"][0]);
  ASSERT_EQ(numbers.size(), bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    const uint32_t wide = uint32_t{bits[i]} << 16;
    float expected;
    std::memcpy(&expected, &wide, 4);
    ASSERT_EQ(numbers[i], static_cast<double>(expected)) << "bits " << bits[i];
  }
}

}  // namespace
}  // namespace dinov3::kserve
