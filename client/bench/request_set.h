// The requests a benchmark run sends, built once before it starts: from image files (sent
// encoded, one request per file) or from one generated image (random RGB8 pixels of a given
// size, sent raw, so the client spends no time encoding and the server none decoding).
//
// Each request carries images_per_request copies of its image. Pure functions; errors are
// NotFound (unreadable file) and InvalidArgument (bad sizes).
#ifndef DINOV3_CLIENT_BENCH_REQUEST_SET_H_
#define DINOV3_CLIENT_BENCH_REQUEST_SET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dinov3/v1/embedding.pb.h"

namespace dinov3::bench {

struct RequestSpec {
  std::vector<std::string> image_files = {};  // empty = one generated image
  int width = 224;                       // of the generated image
  int height = 224;
  int images_per_request = 1;
  std::vector<v1::Output> outputs = {};  // empty = the server's default (cls, pooled)
  v1::DType dtype = v1::FLOAT32;
  int resize_height = 0;  // Preprocess height/width; 0 = the model's default
  int resize_width = 0;
  uint64_t seed = 1;
  // The served models the requests name, each with its weight: the request set repeats each
  // image's request `weight` times per model, so a round-robin over it sends each model its
  // share exactly. Empty = one request per image for the server's default model.
  std::vector<std::pair<std::string, int>> models = {};
};

absl::StatusOr<std::vector<v1::Image>> LoadImages(const RequestSpec& spec);

std::vector<v1::EmbedRequest> MakeEmbedRequests(const RequestSpec& spec,
                                                const std::vector<v1::Image>& images);
std::vector<v1::EmbedDenseRequest> MakeDenseRequests(const RequestSpec& spec,
                                                     const std::vector<v1::Image>& images);

// The model each request made for one image names, in order: spec.models expanded by weight
// ({""} when none is given, the server's default).
std::vector<std::string> ModelSequence(const RequestSpec& spec);

// JSON bodies of the HTTP peer's POST /predict (tests/bench/peers/README.md): one image each,
// base64 bytes with their encoding ("raw" RGB8 or "file"), outputs, dtype and resize.
// InvalidArgument unless images_per_request is 1.
absl::StatusOr<std::vector<std::string>> MakeHttpBodies(const RequestSpec& spec,
                                                        const std::vector<v1::Image>& images);

// "small" or "small:3,plus:1" (weights 1..100; a name alone weighs 1) -> {name, weight}s;
// "" -> {}. InvalidArgument naming the bad part otherwise.
absl::StatusOr<std::vector<std::pair<std::string, int>>> ParseModelMix(const std::string& text);

// "224x224" -> {224, 224} as {width, height}; InvalidArgument otherwise.
absl::StatusOr<std::pair<int, int>> ParseSize(const std::string& text);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_REQUEST_SET_H_
