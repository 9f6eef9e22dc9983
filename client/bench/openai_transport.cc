#include "client/bench/openai_transport.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace dinov3::bench {

std::string SniffImageMediaType(absl::string_view file) {
  if (absl::StartsWith(file, "\xFF\xD8\xFF")) return "image/jpeg";
  if (absl::StartsWith(file, "\x89PNG\r\n\x1A\n")) return "image/png";
  if (file.size() >= 12 && absl::StartsWith(file, "RIFF") && file.substr(8, 4) == "WEBP") {
    return "image/webp";
  }
  if (absl::StartsWith(file, "BM")) return "image/bmp";
  return "";
}

int CountEmbeddings(absl::string_view body) {
  // A key is a quoted string followed by a colon; the model's name or a base64 vector may also
  // read "index" but is then followed by a comma or a brace.
  constexpr absl::string_view kKey = "\"index\"";
  int count = 0;
  for (size_t at = body.find(kKey); at != absl::string_view::npos;
       at = body.find(kKey, at + kKey.size())) {
    size_t next = at + kKey.size();
    while (next < body.size() && absl::ascii_isspace(body[next])) ++next;
    if (next < body.size() && body[next] == ':') ++count;
  }
  return count;
}

absl::StatusOr<std::vector<HttpRequest>> MakeOpenAIRequests(const RequestSpec& spec,
                                                            const std::vector<v1::Image>& images,
                                                            OpenAIEncoding encoding) {
  if (spec.outputs.size() > 1 ||
      (spec.outputs.size() == 1 && spec.outputs[0] != v1::CLS && spec.outputs[0] != v1::POOLED)) {
    return absl::InvalidArgumentError(
        "--protocol=openai answers one vector per image: --outputs must be cls or pooled");
  }
  if (spec.dtype != v1::FLOAT32) {
    return absl::InvalidArgumentError("--protocol=openai answers float32 only (--dtype)");
  }
  if (spec.resize_height > 0 || spec.resize_width > 0) {
    return absl::InvalidArgumentError("--protocol=openai has no --resize");
  }
  std::vector<HttpRequest> requests;
  for (const v1::Image& image : images) {
    if (image.has_raw()) {
      return absl::InvalidArgumentError(
          "--protocol=openai sends image files (data URLs): give --images, not raw pixels");
    }
    const std::string type = SniffImageMediaType(image.encoded());
    if (type.empty()) {
      return absl::InvalidArgumentError(
          "--protocol=openai: an --images file is not JPEG, PNG, WebP or BMP");
    }
    const std::string url =
        absl::StrCat("data:", type, ";base64,", absl::Base64Escape(image.encoded()));
    nlohmann::json body = {
        {"input", std::vector<std::string>(spec.images_per_request, url)},
        {"encoding_format", encoding == OpenAIEncoding::kFloat ? "float" : "base64"}};
    if (!spec.outputs.empty() && spec.outputs[0] == v1::POOLED) body["output"] = "pooled";
    for (const std::string& model : ModelSequence(spec)) {
      body["model"] = model;
      requests.push_back(
          {.path = "/v1/embeddings", .body = body.dump(), .images = spec.images_per_request});
    }
  }
  return requests;
}

absl::StatusOr<std::unique_ptr<Transport>> MakeOpenAITransport(const HttpTarget& target,
                                                               const RequestSpec& spec,
                                                               const std::vector<v1::Image>& images,
                                                               OpenAIEncoding encoding) {
  absl::StatusOr<std::vector<HttpRequest>> requests = MakeOpenAIRequests(spec, images, encoding);
  if (!requests.ok()) return requests.status();
  HttpAnswerCheck check = [](const HttpRequest& request, const ResponseHead& /*head*/,
                             const std::string& body) -> std::string {
    return CountEmbeddings(body) == request.images ? "" : kBadResponse;
  };
  return MakeHttpRequestTransport(target, *std::move(requests), std::move(check));
}

}  // namespace dinov3::bench
