// libFuzzer target: what the HTTP front doors do with a request body before the pipeline. The
// first byte picks the front door, the rest is the body:
//   even: OpenAI POST /v1/embeddings (ParseEmbeddingsRequest);
//   odd:  Open Inference Protocol REST infer (ParseRestInferRequest, then ToEmbedJob), with
//         the second byte, when below 255, as the Inference-Header-Content-Length of the binary
//         extension (at most the body's size).
// Each mapped job then goes through ValidateJob, as the pipeline's Admit does.
// Limits are a small server's (8 images, JSON depth 8). Invariants on success (a broken one
// traps, fuzz_checks.h): an OpenAI request has 1..8 non-empty images; a mapped OIP request has
// 1..8 images, each viewing the request it owns, and a non-empty output plan.
#include <cstddef>
#include <cstdint>
#include <string>

#include "server/kserve/inference_tensors.h"
#include "server/kserve/rest_json.h"
#include "server/openai/embeddings_request.h"
#include "server/pipeline/job_validation.h"
#include "tests/fuzz/fuzz_checks.h"

namespace dinov3::fuzz {
namespace {

constexpr int kMaxImages = 8;
constexpr int kMaxJsonDepth = 8;

pipeline::RequestLimits Limits() {
  pipeline::RequestLimits limits;
  limits.max_images_per_request = kMaxImages;
  limits.image.max_image_bytes = 1 << 20;
  limits.image.max_pixels = 4'000'000;
  return limits;
}

void FuzzOpenAI(const std::string& body) {
  auto parsed = openai::ParseEmbeddingsRequest(
      body, {.max_json_depth = kMaxJsonDepth, .max_images = kMaxImages});
  if (parsed.index() != 0) return;
  const openai::EmbeddingsRequest& request = absl::get<0>(parsed);
  Require(!request.images.empty() && request.images.size() <= kMaxImages,
          "an OpenAI request has 1..max images");
  for (const std::string& image : request.images) Require(!image.empty(), "no empty image");
}

void FuzzRest(std::string body, const std::string* header_length) {
  absl::StatusOr<kserve::RestInferRequest> parsed =
      kserve::ParseRestInferRequest(std::move(body), header_length, kMaxJsonDepth);
  if (!parsed.ok()) return;
  absl::StatusOr<kserve::MappedRequest> mapped =
      kserve::ToEmbedJob(std::move(parsed->request), Limits());
  if (!mapped.ok()) return;
  const pipeline::EmbedJob& job = mapped->job;
  Require(!job.images.empty() && job.images.size() <= kMaxImages,
          "a mapped request has 1..max images");
  Require(job.owner != nullptr, "the job owns what its images view");
  Require(!mapped->plan.entries.empty(), "a mapped request has outputs");
  (void)pipeline::ValidateJob(job, Limits());
}

}  // namespace
}  // namespace dinov3::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  if (data[0] % 2 == 0) {
    dinov3::fuzz::FuzzOpenAI(std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
    return 0;
  }
  std::string body(reinterpret_cast<const char*>(data) + 2, size - 2);
  const std::string length = std::to_string(std::min<size_t>(data[1], body.size()));
  dinov3::fuzz::FuzzRest(std::move(body), data[1] < 255 ? &length : nullptr);
  return 0;
}
