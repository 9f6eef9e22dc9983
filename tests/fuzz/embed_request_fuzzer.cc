// libFuzzer target: what the server does with an Embed call's request before the batcher, fed a
// serialized dinov3.v1.EmbedRequest. Mirrors the native front door and EmbedPipeline
// (server/pipeline/embed_pipeline.cc) without the thread pool, batcher and model: ToEmbedJob
// and ValidateJob, then for each image DecodeJobImage (at reduced scale where preprocess.decode
// is DECODE_FAST) and PlanResize for its full size with the parsed preprocessing options.
//
// Limits are a small server's (8 images, 4M pixels, 1 MiB per image; the default model geometry)
// so that the too-many-images and too-large paths are reachable with small inputs. Invariants on
// success (tests/fuzz/fuzz_checks.h): parsed settings are within range, each decoded image
// honours the image limits, each plan is executable by the engine. A broken one traps. As in
// image_decode_fuzzer.cc, OpenCV's own size limits are left at its defaults.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "dinov3/v1/embedding.pb.h"
#include "server/pipeline/job_image.h"
#include "server/pipeline/job_validation.h"
#include "server/preprocess/resize_plan.h"
#include "server/service/proto_conversion.h"
#include "tests/fuzz/fuzz_checks.h"

namespace dinov3::fuzz {
namespace {

pipeline::RequestLimits Limits() {
  pipeline::RequestLimits limits;
  limits.max_images_per_request = 8;
  limits.image.max_image_bytes = 1 << 20;
  limits.image.max_pixels = 4'000'000;
  limits.image.min_image_side = 8;
  return limits;
}

void CheckSettings(const pipeline::EmbedJob& job, const pipeline::RequestLimits& limits) {
  const pipeline::EmbedSettings& settings = job.settings;
  Require(!job.images.empty() &&
              job.images.size() <= static_cast<size_t>(limits.max_images_per_request),
          "image count within [1, max_images_per_request]");
  Require(settings.priority >= -1 && settings.priority <= 1, "priority is -1, 0 or 1");
  const OutputSet& o = settings.outputs;
  Require(o.cls || o.pooled || o.patch_tokens || o.registers, "at least one output");
  const preprocess::PreprocessOptions& p = settings.preprocess;
  Require(p.height >= 0 && p.width >= 0 && p.max_patches >= 0, "preprocess sizes >= 0");
  Require(p.max_patches <= limits.geometry.max_patches, "max_patches within the model's");
}

void FuzzRequest(std::shared_ptr<const v1::EmbedRequest> request,
                 const pipeline::RequestLimits& limits) {
  absl::StatusOr<pipeline::EmbedJob> job = service::ToEmbedJob(std::move(request), limits);
  if (!job.ok()) return;
  Require(pipeline::ValidateJob(*job, limits).ok(), "a mapped job passes the pipeline's checks");
  CheckSettings(*job, limits);
  const pipeline::EmbedSettings* settings = &job->settings;
  for (const pipeline::JobImage& image : job->images) {
    absl::StatusOr<preprocess::ReducedImage> decoded =
        pipeline::DecodeJobImage(image, limits, settings->preprocess);
    if (!decoded.ok()) continue;  // the pipeline answers this image's error; others still run
    if (settings->preprocess.decode == preprocess::DecodeMode::kExact) {
      CheckImage(decoded->image, limits.image);
      Require(decoded->image.width == decoded->full_size.width &&
                  decoded->image.height == decoded->full_size.height,
              "an exact decode is the full size");
    }
    Require(int64_t{decoded->image.width} * decoded->image.height <=
                int64_t{decoded->full_size.width} * decoded->full_size.height,
            "a fast decode is never larger than the full size");
    absl::StatusOr<ResizePlan> plan = preprocess::PlanResize(
        decoded->full_size.height, decoded->full_size.width, settings->preprocess, limits.geometry);
    if (plan.ok()) CheckPlan(*plan, settings->preprocess, limits.geometry);
  }
}

}  // namespace
}  // namespace dinov3::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const dinov3::pipeline::RequestLimits limits = dinov3::fuzz::Limits();
  auto request = std::make_shared<dinov3::v1::EmbedRequest>();
  if (!request->ParseFromArray(data, static_cast<int>(size))) return 0;
  dinov3::fuzz::FuzzRequest(std::move(request), limits);
  return 0;
}
