#include "server/engine/model_worker.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/engine/output_encoder.h"

namespace dinov3::engine {
namespace {

double SecondsBetween(absl::Time from, absl::Time to) { return absl::ToDoubleSeconds(to - from); }

}  // namespace

ModelWorker::ModelWorker(const model::ModelRuntime* runtime)
    : runtime_(runtime),
      norm_{runtime->metadata().image_mean, runtime->metadata().image_std} {}

void ModelWorker::Run(batching::TaskBatch batch) {
  if (batch.empty()) return;
  absl::Status status;
  try {
    status = RunOrError(batch);
  } catch (const std::exception& e) {
    std::string_view what = e.what();
    status = absl::InternalError(
        absl::StrCat("inference failed: ", std::string(what.substr(0, what.find('\n')))));
  }
  if (!status.ok()) {
    for (auto& task : batch) task->Finish(status);  // no-op for tasks already finished
  }
}

absl::Status ModelWorker::RunOrError(batching::TaskBatch& batch) {
  const absl::Time start = absl::Now();
  const torch::Device& device = runtime_->device();
  std::vector<torch::Tensor> inputs;
  inputs.reserve(batch.size());
  for (const auto& task : batch) {
    inputs.push_back(ImageToModelInput(task->image, task->plan, norm_, device));
  }
  absl::StatusOr<model::ModelOutputs> out = runtime_->Forward(torch::stack(inputs));
  if (!out.ok()) return out.status();
  const absl::Time forward_done = absl::Now();
  const int patch = runtime_->metadata().patch_size;
  for (size_t i = 0; i < batch.size(); ++i) {
    batching::EmbedTask& task = *batch[i];
    const auto index = static_cast<int64_t>(i);
    EmbeddingResult result = EncodeOutputs(
        {out->cls[index], out->registers[index], out->patch_tokens[index]},
        {task.outputs, task.dtype, task.l2_normalize}, task.plan.out_height / patch,
        task.plan.out_width / patch);
    result.queue_seconds = SecondsBetween(task.enqueue_time, start);
    result.inference_seconds = SecondsBetween(start, forward_done);
    task.Finish(std::move(result));
  }
  return absl::OkStatus();
}

}  // namespace dinov3::engine
