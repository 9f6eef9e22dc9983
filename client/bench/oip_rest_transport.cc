#include "client/bench/oip_rest_transport.h"

#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace dinov3::bench {
namespace {

using nlohmann::json;

constexpr char kHeaderLength[] = "Inference-Header-Content-Length";

// `name` as a URL path segment: unreserved characters as they are, the rest percent-encoded.
std::string PathSegment(const std::string& name) {
  std::string out;
  for (const char c : name) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      const auto byte = static_cast<uint8_t>(c);
      out.push_back('%');
      out.push_back("0123456789ABCDEF"[byte >> 4]);
      out.push_back("0123456789ABCDEF"[byte & 15]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<HttpRequest>> MakeOipRestRequests(const RequestSpec& spec,
                                                             const std::vector<v1::Image>& images) {
  if (spec.models.empty()) {
    return absl::InvalidArgumentError(
        "--protocol=oip-rest needs --model: the model's name is part of the path");
  }
  json outputs = json::array();
  for (const OipOutput& output : OipOutputs(spec)) {
    outputs.push_back({{"name", output.name},
                       {"parameters", {{"datatype", output.datatype}, {"binary_data", true}}}});
  }
  json parameters = json::object();
  if (spec.resize_height > 0) parameters["height"] = spec.resize_height;
  if (spec.resize_width > 0) parameters["width"] = spec.resize_width;
  std::vector<HttpRequest> requests;
  for (const v1::Image& image : images) {
    absl::StatusOr<OipInput> input = MakeOipInput(image, spec.images_per_request);
    if (!input.ok()) return input.status();
    json header = {{"inputs",
                    {{{"name", input->name},
                      {"datatype", input->datatype},
                      {"shape", input->shape},
                      {"parameters", {{"binary_data_size", input->raw.size()}}}}}},
                   {"outputs", outputs}};
    if (!parameters.empty()) header["parameters"] = parameters;
    const std::string text = header.dump();
    const std::string body = absl::StrCat(text, input->raw);
    for (const std::string& model : ModelSequence(spec)) {
      requests.push_back({.path = absl::StrCat("/v2/models/", PathSegment(model), "/infer"),
                          .content_type = "application/octet-stream",
                          .headers = {{kHeaderLength, absl::StrCat(text.size())}},
                          .body = body,
                          .images = spec.images_per_request});
    }
  }
  return requests;
}

std::string CheckOipRestAnswer(const std::vector<OipOutput>& asked, int images,
                               const ResponseHead& head, const std::string& body) {
  const auto length_field = head.headers.find("inference-header-content-length");
  size_t length = 0;
  if (length_field == head.headers.end() || !absl::SimpleAtoi(length_field->second, &length) ||
      length > body.size()) {
    return kBadResponse;
  }
  size_t binary = 0;
  size_t matched = 0;
  try {  // a field of another type than the protocol's throws json::type_error
    const json header = json::parse(body.begin(), body.begin() + static_cast<ptrdiff_t>(length));
    for (const json& output : header.at("outputs")) {
      const json parameters = output.value("parameters", json::object());
      if (!parameters.contains("binary_data_size")) continue;  // in JSON: no binary bytes
      const size_t bytes = parameters.at("binary_data_size").get<size_t>();
      binary += bytes;
      const std::string name = output.at("name").get<std::string>();
      const std::string datatype = output.at("datatype").get<std::string>();
      const std::vector<int64_t> shape = output.at("shape").get<std::vector<int64_t>>();
      for (const OipOutput& want : asked) {
        if (want.name != name) continue;
        if (!OipOutputMatches(want, images, datatype, shape, bytes)) return kBadResponse;
        ++matched;
      }
    }
  } catch (const json::exception&) {
    return kBadResponse;
  }
  if (matched != asked.size() || binary != body.size() - length) return kBadResponse;
  return "";
}

absl::StatusOr<std::unique_ptr<Transport>> MakeOipRestTransport(
    const HttpTarget& target, const RequestSpec& spec, const std::vector<v1::Image>& images) {
  absl::StatusOr<std::vector<HttpRequest>> requests = MakeOipRestRequests(spec, images);
  if (!requests.ok()) return requests.status();
  const int count = spec.images_per_request;
  HttpAnswerCheck check = [asked = OipOutputs(spec), count](const HttpRequest& /*request*/,
                                                            const ResponseHead& head,
                                                            const std::string& body) {
    return CheckOipRestAnswer(asked, count, head, body);
  };
  return MakeHttpRequestTransport(target, *std::move(requests), std::move(check));
}

}  // namespace dinov3::bench
