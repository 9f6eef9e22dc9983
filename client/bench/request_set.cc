#include "client/bench/request_set.h"

#include <fstream>
#include <iterator>
#include <random>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/cpp/tensor_decode.h"
#include "nlohmann/json.hpp"

namespace dinov3::bench {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open image file ", path));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));
  return bytes;
}

v1::Image GeneratedImage(const RequestSpec& spec) {
  std::mt19937_64 engine(spec.seed);
  std::string pixels(static_cast<size_t>(spec.width) * spec.height * 3, '\0');
  for (char& p : pixels) p = static_cast<char>(engine() & 0xff);
  v1::Image image;
  v1::RawImage* raw = image.mutable_raw();
  raw->set_width(spec.width);
  raw->set_height(spec.height);
  raw->set_format(v1::RGB8);
  raw->set_data(std::move(pixels));
  return image;
}

void SetPreprocess(const RequestSpec& spec, v1::Preprocess* preprocess) {
  preprocess->set_height(spec.resize_height);
  preprocess->set_width(spec.resize_width);
}

const char* OutputName(v1::Output output) {
  switch (output) {
    case v1::CLS: return "cls";
    case v1::POOLED: return "pooled";
    case v1::PATCH_TOKENS: return "patch_tokens";
    case v1::REGISTERS: return "registers";
    default: return "unspecified";
  }
}

}  // namespace

absl::StatusOr<std::pair<int, int>> ParseSize(const std::string& text) {
  const std::vector<std::string> parts = absl::StrSplit(text, 'x');
  int width = 0;
  int height = 0;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &width) ||
      !absl::SimpleAtoi(parts[1], &height) || width <= 0 || height <= 0 || width > 16384 ||
      height > 16384) {
    return absl::InvalidArgumentError(
        absl::StrCat("size '", text, "' must be WIDTHxHEIGHT, each 1 to 16384, e.g. 224x224"));
  }
  return std::make_pair(width, height);
}

absl::StatusOr<std::vector<v1::Image>> LoadImages(const RequestSpec& spec) {
  if (spec.images_per_request < 1) {
    return absl::InvalidArgumentError("images_per_request must be at least 1");
  }
  std::vector<v1::Image> images;
  if (spec.image_files.empty()) {
    if (spec.width <= 0 || spec.height <= 0) {
      return absl::InvalidArgumentError("the generated image needs a positive size");
    }
    images.push_back(GeneratedImage(spec));
    return images;
  }
  for (const std::string& path : spec.image_files) {
    absl::StatusOr<std::string> bytes = ReadFile(path);
    if (!bytes.ok()) return bytes.status();
    images.emplace_back().set_encoded(*std::move(bytes));
  }
  return images;
}

std::vector<std::string> ModelSequence(const RequestSpec& spec) {
  if (spec.models.empty()) return {""};
  std::vector<std::string> names;
  for (const auto& [name, weight] : spec.models) names.insert(names.end(), weight, name);
  return names;
}

std::vector<v1::EmbedRequest> MakeEmbedRequests(const RequestSpec& spec,
                                                const std::vector<v1::Image>& images) {
  std::vector<v1::EmbedRequest> requests;
  for (const v1::Image& image : images) {
    for (const std::string& model : ModelSequence(spec)) {
      v1::EmbedRequest& request = requests.emplace_back();
      for (int i = 0; i < spec.images_per_request; ++i) *request.add_images() = image;
      for (const v1::Output output : spec.outputs) request.add_outputs(output);
      request.set_dtype(spec.dtype);
      SetPreprocess(spec, request.mutable_preprocess());
      request.set_model(model);
    }
  }
  return requests;
}

std::vector<v1::EmbedDenseRequest> MakeDenseRequests(const RequestSpec& spec,
                                                     const std::vector<v1::Image>& images) {
  std::vector<v1::EmbedDenseRequest> requests;
  for (const v1::Image& image : images) {
    for (const std::string& model : ModelSequence(spec)) {
      v1::EmbedDenseRequest& request = requests.emplace_back();
      *request.mutable_image() = image;
      request.set_dtype(spec.dtype);
      SetPreprocess(spec, request.mutable_preprocess());
      request.set_model(model);
    }
  }
  return requests;
}

absl::StatusOr<std::vector<std::pair<std::string, int>>> ParseModelMix(const std::string& text) {
  std::vector<std::pair<std::string, int>> models;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> name_weight = absl::StrSplit(part, ':');
    int weight = 1;
    if (name_weight.first.empty() ||
        (part.find(':') != absl::string_view::npos &&
         (!absl::SimpleAtoi(name_weight.second, &weight) || weight < 1 || weight > 100))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--model: '", part, "' is not NAME or NAME:WEIGHT with a weight of 1 to 100"));
    }
    models.emplace_back(std::string(name_weight.first), weight);
  }
  return models;
}

absl::StatusOr<std::vector<std::string>> MakeHttpBodies(const RequestSpec& spec,
                                                        const std::vector<v1::Image>& images) {
  if (spec.images_per_request != 1) {
    return absl::InvalidArgumentError("the HTTP peer takes one image per request");
  }
  std::vector<std::string> bodies;
  for (const v1::Image& image : images) {
    nlohmann::json body;
    if (image.has_raw()) {
      body["image"] = absl::Base64Escape(image.raw().data());
      body["encoding"] = "raw";
      body["width"] = image.raw().width();
      body["height"] = image.raw().height();
    } else {
      body["image"] = absl::Base64Escape(image.encoded());
      body["encoding"] = "file";
    }
    nlohmann::json outputs = nlohmann::json::array();
    for (const v1::Output output : spec.outputs) outputs.push_back(OutputName(output));
    if (!outputs.empty()) body["outputs"] = outputs;
    body["dtype"] = client::DTypeName(spec.dtype);
    if (spec.resize_height > 0 && spec.resize_width > 0) {
      body["resize"] = {spec.resize_height, spec.resize_width};
    }
    bodies.push_back(body.dump());
  }
  return bodies;
}

}  // namespace dinov3::bench
