#include "server/kserve/rest_json.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/status_macros.h"
#include "server/http/json_body.h"

namespace dinov3::kserve {
namespace {

using nlohmann::json;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<Parameters> ToParameters(const json& object, absl::string_view where) {
  if (!object.is_object()) return Invalid(where, "must be an object");
  Parameters parameters;
  for (const auto& [key, value] : object.items()) {
    if (value.is_boolean()) {
      parameters[key] = value.get<bool>();
    } else if (value.is_number_unsigned() &&
               value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      // As the gRPC front door's uint64 parameters: beyond int64, refused (not wrapped).
      return Invalid(absl::StrCat(where, ".", key),
                     absl::StrCat(value.get<uint64_t>(), " is too large"));
    } else if (value.is_number_integer()) {
      parameters[key] = value.get<int64_t>();
    } else if (value.is_number_float()) {
      parameters[key] = value.get<double>();
    } else if (value.is_string()) {
      parameters[key] = value.get<std::string>();
    } else {
      return Invalid(absl::StrCat(where, ".", key), "must be a boolean, number or string");
    }
  }
  return parameters;
}

// Appends the leaves of `data` (nested arrays) to `leaves`.
void Flatten(const json& data, std::vector<const json*>& leaves) {
  if (!data.is_array()) {
    leaves.push_back(&data);
    return;
  }
  for (const json& item : data) Flatten(item, leaves);
}

absl::Status ReadJsonData(const json& data, const std::string& where, InputTensor& input) {
  std::vector<const json*> leaves;
  Flatten(data, leaves);
  if (input.datatype == "BYTES") {
    for (size_t k = 0; k < leaves.size(); ++k) {
      if (!leaves[k]->is_string()) {
        return Invalid(absl::StrCat(where, ".data[", k, "]"), "a BYTES element must be a string");
      }
      absl::string_view text = leaves[k]->get_ref<const std::string&>();
      if (absl::StartsWith(text, "data:") && text.find(',') != absl::string_view::npos) {
        text = text.substr(text.find(',') + 1);
      }
      std::string bytes;
      if (!absl::Base64Unescape(text, &bytes)) {
        return Invalid(absl::StrCat(where, ".data[", k, "]"),
                       "not base64 (an image file in JSON travels as base64; or send it in "
                       "binary with the binary data extension)");
      }
      input.elements.push_back(std::move(bytes));
    }
    return absl::OkStatus();
  }
  if (input.datatype != "UINT8") {
    return Invalid(where, absl::StrCat("datatype ", input.datatype,
                                       " is not an input of this model (IMAGE is BYTES, "
                                       "PIXELS is UINT8)"));
  }
  std::vector<uint32_t> values;
  values.reserve(leaves.size());
  for (size_t k = 0; k < leaves.size(); ++k) {
    if (!leaves[k]->is_number_unsigned() || leaves[k]->get<uint64_t>() > 255) {
      return Invalid(absl::StrCat(where, ".data[", k, "]"),
                     "a UINT8 element must be an integer from 0 to 255");
    }
    values.push_back(leaves[k]->get<uint32_t>());
  }
  ASSIGN_OR_RETURN(input.raw, Uint8FromValues(input.name, input.shape, values));
  input.has_raw = true;
  return absl::OkStatus();
}

absl::StatusOr<InputTensor> ReadInput(const json& item, const std::string& where,
                                      const std::string& body, size_t& offset) {
  if (!item.is_object()) return Invalid(where, "must be an object");
  InputTensor input;
  const auto name = item.find("name");
  const auto datatype = item.find("datatype");
  const auto shape = item.find("shape");
  if (name == item.end() || !name->is_string()) return Invalid(where, "needs a string 'name'");
  if (datatype == item.end() || !datatype->is_string()) {
    return Invalid(where, "needs a string 'datatype'");
  }
  if (shape == item.end() || !shape->is_array()) return Invalid(where, "needs a 'shape' array");
  input.name = name->get<std::string>();
  input.datatype = datatype->get<std::string>();
  const std::string named = absl::StrCat(where, " (", input.name, ")");
  for (const json& dim : *shape) {
    if (!dim.is_number_integer() || dim.get<int64_t>() < 0) {
      return Invalid(named, "shape must hold non-negative integers");
    }
    input.shape.push_back(dim.get<int64_t>());
  }
  if (const auto parameters = item.find("parameters"); parameters != item.end()) {
    ASSIGN_OR_RETURN(input.parameters, ToParameters(*parameters, named + ".parameters"));
  }
  const auto size = input.parameters.find("binary_data_size");
  const auto data = item.find("data");
  if (size == input.parameters.end()) {
    if (data == item.end()) return Invalid(named, "needs 'data' or parameters.binary_data_size");
    RETURN_IF_ERROR(ReadJsonData(*data, named, input));
    return input;
  }
  if (data != item.end()) return Invalid(named, "has both 'data' and binary_data_size");
  const int64_t* bytes = std::get_if<int64_t>(&size->second);
  if (bytes == nullptr || *bytes < 0) {
    return Invalid(named, "binary_data_size must be a non-negative integer");
  }
  if (static_cast<uint64_t>(*bytes) > body.size() - offset) {
    return Invalid(named,
                   absl::StrCat("binary_data_size ", *bytes, " runs past the end of the ", "body (",
                                body.size() - offset, " bytes of binary data ", "are left)"));
  }
  input.raw = body.substr(offset, static_cast<size_t>(*bytes));
  input.has_raw = true;
  offset += static_cast<size_t>(*bytes);
  return input;
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = (bits >> 15) & 1;
  const int exponent = (bits >> 10) & 0x1f;
  const uint32_t mantissa = bits & 0x3ff;
  float value;
  if (exponent == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 31) {
    value = mantissa == 0 ? INFINITY : NAN;
  } else {
    value = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  }
  return sign ? -value : value;
}

json NumbersOf(const OutputTensor& output) {
  json numbers = json::array();
  const std::string& data = output.data;
  // Exactly the values' room: the answer's footprint counts kJsonNumberBytes per value.
  numbers.get_ref<json::array_t&>().reserve(data.size() / (output.datatype == "FP32" ? 4 : 2));
  if (output.datatype == "FP32") {
    for (size_t i = 0; i + 4 <= data.size(); i += 4) {
      float value;
      std::memcpy(&value, data.data() + i, 4);
      numbers.push_back(value);
    }
    return numbers;
  }
  for (size_t i = 0; i + 2 <= data.size(); i += 2) {
    uint16_t bits;
    std::memcpy(&bits, data.data() + i, 2);
    if (output.datatype == "BF16") {
      const uint32_t wide = uint32_t{bits} << 16;
      float value;
      std::memcpy(&value, &wide, 4);
      numbers.push_back(value);
    } else {
      numbers.push_back(HalfToFloat(bits));
    }
  }
  return numbers;
}

json ToJson(const Parameters& parameters) {
  json object = json::object();
  for (const auto& [key, value] : parameters) {
    std::visit([&object, &key = key](const auto& v) { object[key] = v; }, value);
  }
  return object;
}

}  // namespace

absl::StatusOr<RestInferRequest> ParseRestInferRequest(std::string body,
                                                       const std::string* header_length,
                                                       int max_json_depth) {
  size_t json_size = body.size();
  if (header_length != nullptr) {
    uint64_t length = 0;
    if (!absl::SimpleAtoi(*header_length, &length) || length > body.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Inference-Header-Content-Length must be a byte count within the body (",
                       body.size(), " bytes), got '", *header_length, "'"));
    }
    json_size = static_cast<size_t>(length);
  }
  ASSIGN_OR_RETURN(
      json root, http::ParseJsonBody(absl::string_view(body).substr(0, json_size), max_json_depth));
  if (!root.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  RestInferRequest out;
  InferenceRequest& request = out.request;
  if (const auto id = root.find("id"); id != root.end()) {
    if (!id->is_string()) return Invalid("id", "must be a string");
    request.id = id->get<std::string>();
  }
  if (const auto parameters = root.find("parameters"); parameters != root.end()) {
    ASSIGN_OR_RETURN(request.parameters, ToParameters(*parameters, "parameters"));
  }
  if (const auto it = request.parameters.find("binary_data_output");
      it != request.parameters.end()) {
    const bool* binary = std::get_if<bool>(&it->second);
    if (binary == nullptr) return Invalid("parameters.binary_data_output", "must be a boolean");
    out.binary_default = *binary;
  }
  const auto inputs = root.find("inputs");
  if (inputs == root.end() || !inputs->is_array() || inputs->empty()) {
    return Invalid("inputs", "must be a non-empty array (IMAGE or PIXELS)");
  }
  size_t offset = json_size;
  for (size_t i = 0; i < inputs->size(); ++i) {
    ASSIGN_OR_RETURN(InputTensor input,
                     ReadInput((*inputs)[i], absl::StrCat("inputs[", i, "]"), body, offset));
    request.inputs.push_back(std::move(input));
  }
  if (offset != body.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(body.size() - offset,
                     " bytes of binary data follow the inputs that no "
                     "input claims with parameters.binary_data_size"));
  }
  if (const auto outputs = root.find("outputs"); outputs != root.end()) {
    if (!outputs->is_array()) return Invalid("outputs", "must be an array");
    for (size_t i = 0; i < outputs->size(); ++i) {
      const json& item = (*outputs)[i];
      const std::string where = absl::StrCat("outputs[", i, "]");
      if (!item.is_object() || !item.contains("name") || !item["name"].is_string()) {
        return Invalid(where, "must be an object with a string 'name'");
      }
      RequestedOutput output;
      output.name = item["name"].get<std::string>();
      if (const auto parameters = item.find("parameters"); parameters != item.end()) {
        ASSIGN_OR_RETURN(output.parameters, ToParameters(*parameters, where + ".parameters"));
      }
      if (const auto it = output.parameters.find("binary_data"); it != output.parameters.end()) {
        const bool* binary = std::get_if<bool>(&it->second);
        if (binary == nullptr) return Invalid(where + ".parameters.binary_data", "not a boolean");
        out.binary_outputs[output.name] = *binary;
      }
      request.outputs.push_back(std::move(output));
    }
  }
  return out;
}

RestBody SerializeRestInferResponse(InferenceResponse&& response,
                                    const RestInferRequest& encoding) {
  json outputs = json::array();
  std::string binary;
  for (OutputTensor& output : response.outputs) {
    json tensor = {{"name", output.name}, {"datatype", output.datatype}, {"shape", output.shape}};
    json parameters = ToJson(output.parameters);
    const auto it = encoding.binary_outputs.find(output.name);
    const bool in_binary =
        it != encoding.binary_outputs.end() ? it->second : encoding.binary_default;
    if (in_binary) {
      parameters["binary_data_size"] = output.data.size();
      binary += output.data;
    } else {
      tensor["data"] = NumbersOf(output);
    }
    std::string().swap(output.data);
    if (!parameters.empty()) tensor["parameters"] = std::move(parameters);
    outputs.push_back(std::move(tensor));
  }
  json header = {{"model_name", response.model_name},
                 {"model_version", response.model_version},
                 {"outputs", std::move(outputs)}};
  if (!response.id.empty()) header["id"] = response.id;
  RestBody out;
  out.body = header.dump();
  if (binary.empty()) {
    out.content_type = "application/json";
    return out;
  }
  out.header_length = static_cast<int64_t>(out.body.size());
  out.body += binary;
  out.content_type = "application/octet-stream";
  return out;
}

}  // namespace dinov3::kserve
