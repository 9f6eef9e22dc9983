#include "server/openai/embeddings_request.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/http/json_body.h"

namespace dinov3::openai {
namespace {

using nlohmann::json;

EmbeddingsError Invalid(std::string param, std::string message) {
  return EmbeddingsError{400, std::move(param), std::move(message)};
}

// One input: the encoded file, or the error's message.
absl::variant<std::string, std::string> DecodeImage(absl::string_view text) {
  if (absl::StartsWithIgnoreCase(text, "http://") || absl::StartsWithIgnoreCase(text, "https://")) {
    return absl::variant<std::string, std::string>(
        absl::in_place_index<1>,
        "URLs are not fetched (the server never reaches out to the network); send the image "
        "itself as a data URL, data:image/jpeg;base64,...");
  }
  absl::string_view payload = text;
  if (absl::StartsWithIgnoreCase(text, "data:")) {
    const size_t comma = text.find(',');
    const absl::string_view header =
        comma == absl::string_view::npos ? text.substr(5) : text.substr(5, comma - 5);
    if (comma == absl::string_view::npos || !absl::EndsWithIgnoreCase(header, ";base64")) {
      return absl::variant<std::string, std::string>(
          absl::in_place_index<1>, "a data URL must be base64: data:image/<type>;base64,<data>");
    }
    const absl::string_view media = header.substr(0, header.find(';'));
    if (!absl::StartsWithIgnoreCase(media, "image/")) {
      return absl::variant<std::string, std::string>(
          absl::in_place_index<1>,
          absl::StrCat("the data URL's media type is '", media,
                       "'; send an image (image/jpeg, image/png, image/webp, image/bmp)"));
    }
    payload = text.substr(comma + 1);
  }
  std::string bytes;
  if (payload.empty() || !absl::Base64Unescape(payload, &bytes) || bytes.empty()) {
    return absl::variant<std::string, std::string>(
        absl::in_place_index<1>,
        "not valid base64 (send a data URL, data:image/jpeg;base64,..., or bare base64 of an "
        "image file)");
  }
  return absl::variant<std::string, std::string>(absl::in_place_index<0>, std::move(bytes));
}

const char* TypeName(const json& value) {
  return value.type_name();  // "null", "boolean", "number", "string", "array", "object"
}

}  // namespace

absl::variant<EmbeddingsRequest, EmbeddingsError> ParseEmbeddingsRequest(
    absl::string_view body, const EmbeddingsLimits& limits) {
  absl::StatusOr<json> parsed = http::ParseJsonBody(body, limits.max_json_depth);
  if (!parsed.ok()) return Invalid("", std::string(parsed.status().message()));
  const json root = *std::move(parsed);
  if (!root.is_object()) {
    return Invalid("", absl::StrCat("the body must be a JSON object, got ", TypeName(root)));
  }
  EmbeddingsRequest request;
  const json* input = nullptr;
  for (const auto& [key, value] : root.items()) {
    if (key == "input") {
      input = &value;
    } else if (key == "model") {
      if (!value.is_string()) {
        return Invalid("model", absl::StrCat("model must be a string, got ", TypeName(value)));
      }
      request.model = value.get<std::string>();
    } else if (key == "encoding_format") {
      const std::string format = value.is_string() ? value.get<std::string>() : "";
      if (format == "float") {
        request.encoding_format = EncodingFormat::kFloat;
      } else if (format == "base64") {
        request.encoding_format = EncodingFormat::kBase64;
      } else {
        return Invalid("encoding_format", "encoding_format must be \"float\" or \"base64\"");
      }
    } else if (key == "output") {
      const std::string output = value.is_string() ? value.get<std::string>() : "";
      if (output == "cls") {
        request.output = EmbeddingOutput::kCls;
      } else if (output == "pooled") {
        request.output = EmbeddingOutput::kPooled;
      } else {
        return Invalid("output",
                       "output must be \"cls\" (the class token, the default) or \"pooled\" "
                       "(the mean of the patch tokens)");
      }
    } else if (key == "normalize") {
      if (!value.is_boolean()) {
        return Invalid("normalize",
                       absl::StrCat("normalize must be true or false, got ", TypeName(value)));
      }
      request.normalize = value.get<bool>();
    } else if (key == "dimensions") {
      return Invalid("dimensions",
                     "dimensions is not supported: DINOv3 is not trained for truncated vectors; "
                     "leave it out to get the model's full embedding");
    } else if (key == "user") {
      // accepted and ignored, as an end-user identifier
    } else {
      return Invalid(key, absl::StrCat("unknown field '", key,
                                       "'; known: model, input, encoding_format, output, "
                                       "normalize, user"));
    }
  }
  if (input == nullptr) return Invalid("input", "input is required: an image or a list of them");
  std::vector<const json*> items;
  if (input->is_string()) {
    items.push_back(input);
  } else if (input->is_array()) {
    for (const json& item : *input) items.push_back(&item);
  } else {
    return Invalid("input", absl::StrCat("input must be an image (a data URL or base64 string) "
                                         "or a list of them, got ",
                                         TypeName(*input)));
  }
  if (items.empty()) return Invalid("input", "input is empty: send at least one image");
  if (static_cast<int>(items.size()) > limits.max_images) {
    return Invalid("input", absl::StrCat("input has ", items.size(), " images; the limit is ",
                                         limits.max_images, " (limits.max_images_per_request)"));
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string param = absl::StrCat("input[", i, "]");
    if (!items[i]->is_string()) {
      return Invalid(param, absl::StrCat(param, " must be a string (a data URL or base64 of an ",
                                         "image; DINOv3 embeds images, not tokens), got ",
                                         TypeName(*items[i])));
    }
    auto image = DecodeImage(items[i]->get_ref<const std::string&>());
    if (image.index() == 1) {
      return Invalid(param, absl::StrCat(param, ": ", absl::get<1>(image)));
    }
    request.images.push_back(std::move(absl::get<0>(image)));
  }
  return request;
}

}  // namespace dinov3::openai
