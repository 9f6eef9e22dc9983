#include "server/engine/model_worker.h"

#include <ATen/Parallel.h>
#include <c10/core/StreamGuard.h>
#include <spdlog/spdlog.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "server/common/status_macros.h"
#include "server/common/status_reason.h"
#include "server/engine/batch_splitter.h"
#include "server/engine/device_stream.h"
#include "server/engine/model_engine.h"
#include "server/engine/output_encoder.h"

namespace dinov3::engine {
namespace {

double SecondsBetween(absl::Time from, absl::Time to) { return absl::ToDoubleSeconds(to - from); }

// The first line of a LibTorch error: the rest is a backtrace, internals nobody should see.
std::string FirstLine(absl::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
}

absl::Status OutOfDeviceMemory(size_t images, int height, int width, bool split) {
  return WithReason(absl::ResourceExhaustedError(absl::StrCat(
                        "out of device memory for a batch of ", images, " images of ", height, "x",
                        width, split ? " (also when split down to single images)" : "")),
                    kReasonOutOfMemory);
}

}  // namespace

ModelWorker::ModelWorker(const model::ModelRuntime* runtime, WorkerOptions options)
    : runtime_(runtime),
      options_(std::move(options)),
      norm_{runtime->metadata().image_mean, runtime->metadata().image_std} {}

absl::Status ModelWorker::PrepareThread() {
  if (options_.intra_op_threads > 0) at::set_num_threads(options_.intra_op_threads);
  ASSIGN_OR_RETURN(stream_, NewInstanceStream(runtime_->device()));
  c10::OptionalStreamGuard stream_guard(stream_);
  c10::InferenceMode inference;
  try {
    return WarmUp();
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("warm-up on ", runtime_->device().str(), " failed: ", FirstLine(e.what())));
  }
}

absl::Status ModelWorker::WarmUp() {
  std::vector<int> sizes = {1};
  if (options_.warmup_max_batch_size > 1) sizes.push_back(options_.warmup_max_batch_size);
  for (const int batch : sizes) {
    // Twice: TorchScript's profiling executor optimises the graph on the second run.
    for (int run = 0; run < 2; ++run) RETURN_IF_ERROR(ForwardSynthetic(batch, "warm-up"));
  }
  return absl::OkStatus();
}

absl::Status ModelWorker::ForwardSynthetic(int batch, absl::string_view purpose) {
  const model::ModelMetadata& m = runtime_->metadata();
  const int h = m.default_height;
  const int w = m.default_width;
  RgbImage image{w, h, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3, 128)};
  const ResizePlan plan{h, w, 0, 0, h, w, Interpolation::kBilinear};
  const torch::Tensor input = ImageToModelInput(image, plan, norm_, runtime_->device());
  const int64_t ooms = OutOfMemoryCount(runtime_->device());
  absl::StatusOr<model::ModelOutputs> out =
      runtime_->Forward(input.unsqueeze(0).expand({batch, 3, h, w}).contiguous());
  SynchronizeStream(stream_);
  if (out.ok()) return absl::OkStatus();
  const bool oom = OutOfMemoryCount(runtime_->device()) != ooms;
  return absl::Status(
      oom ? absl::StatusCode::kResourceExhausted : out.status().code(),
      absl::StrCat(purpose, " forward of a batch of ", batch, " at ", h, "x", w, " on ",
                   runtime_->device().str(), " failed: ", out.status().message()));
}

absl::Status ModelWorker::Probe() {
  c10::OptionalStreamGuard stream_guard(stream_);
  c10::InferenceMode inference;
  try {
    return ForwardSynthetic(1, "health probe");
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("health probe on ", runtime_->device().str(),
                                            " failed: ", FirstLine(e.what())));
  }
}

void ModelWorker::Run(batching::TaskBatch batch) {
  if (batch.empty()) return;
  const absl::Time start = absl::Now();
  c10::OptionalStreamGuard stream_guard(stream_);
  c10::InferenceMode inference;
  const TaskSpan tasks(batch);
  const int height = batch.front()->plan.out_height;
  const int width = batch.front()->plan.out_width;
  const size_t failed = RunIsolatingFailures(
      tasks.size(),
      [&](size_t begin, size_t end) { return RunTasks(tasks.subspan(begin, end - begin), start); },
      [&](size_t begin, size_t end, const absl::Status& status) {
        const absl::Status final_status =
            absl::IsResourceExhausted(status)
                ? OutOfDeviceMemory(batch.size(), height, width, batch.size() > 1)
                : status;
        for (size_t i = begin; i < end; ++i) batch[i]->Finish(final_status);
      });
  for (auto& task : batch) {  // a safety net: every task above was finished
    if (!task->finished()) task->Finish(absl::InternalError("inference failed: not finished"));
  }
  RecordOutcome(/*answered=*/failed < batch.size());
}

absl::Status ModelWorker::RunTasks(TaskSpan tasks, absl::Time start) {
  const int64_t ooms = OutOfMemoryCount(runtime_->device());
  absl::Status status;
  try {
    status = RunTasksOrThrow(tasks, start);
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(FirstLine(e.what()));
  } catch (const std::exception& e) {
    status = absl::InternalError(FirstLine(e.what()));
  }
  if (status.ok()) return status;
  if (tasks.size() == 1) {  // this image's final outcome (batch_splitter.h): log the cause
    const std::string cause = model::ErrorCause(status);
    spdlog::warn("inference on {} failed for one image: {}{}{}", runtime_->device().str(),
                 std::string(status.message()), cause.empty() ? "" : "; model error: ", cause);
  }
  // The interpreter rethrows a forward's OutOfMemoryError as a plain error and the runtime turns
  // that into a status: the allocator's count is what still tells.
  if (absl::IsResourceExhausted(status) || OutOfMemoryCount(runtime_->device()) != ooms) {
    return absl::ResourceExhaustedError(status.message());
  }
  return absl::InternalError(absl::StrCat("inference failed: ", status.message()));
}

absl::Status ModelWorker::RunTasksOrThrow(TaskSpan tasks, absl::Time start) {
  const absl::Time batch_start = absl::Now();
  const torch::Device& device = runtime_->device();
  std::vector<torch::Tensor> inputs;
  inputs.reserve(tasks.size());
  for (const auto& task : tasks) {
    const ResizePlan& plan = task->plan;
    inputs.push_back(task->input.empty() ? ImageToModelInput(task->image, plan, norm_, device)
                                         : torch::from_blob(task->input.data(),  // stack copies it
                                                            {3, plan.out_height, plan.out_width})
                                               .to(device));
  }
  const LayerSelection& layers = tasks.front()->layers;  // the batch's (batch_policy.h)
  ASSIGN_OR_RETURN(model::ModelOutputs out,
                   runtime_->Forward(torch::stack(inputs), layers.indices, layers.norm));
  SynchronizeStream(stream_);  // the forward is asynchronous on a GPU
  const absl::Time forward_done = absl::Now();
  if (options_.on_batch) {  // this (sub-)batch's own time, also after an out-of-memory split
    options_.on_batch(device.str(), static_cast<int>(tasks.size()),
                      SecondsBetween(batch_start, forward_done));
  }
  const int patch = runtime_->metadata().patch_size;
  std::vector<EmbeddingResult> results;  // all encoded before any task is finished
  results.reserve(tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    const batching::EmbedTask& task = *tasks[i];
    const auto index = static_cast<int64_t>(i);
    const EncodeOptions options{task.outputs, task.dtype, task.l2_normalize};
    results.push_back(EncodeOutputs({out.cls[index], out.registers[index], out.patch_tokens[index]},
                                    options, task.plan.out_height / patch,
                                    task.plan.out_width / patch));
    for (size_t l = 0; l < layers.indices.size(); ++l) {
      const auto slot = static_cast<int64_t>(l);
      results.back().layers.push_back(
          EncodeLayer(layers.indices[l],
                      {out.layer_cls[index][slot], out.layer_registers[index][slot],
                       out.layer_patch_tokens[index][slot]},
                      options));
    }
    results.back().queue_seconds = SecondsBetween(task.enqueue_time, start);
    results.back().inference_seconds = SecondsBetween(start, forward_done);
    results.back().batch_size = task.batch_size;
  }
  for (size_t i = 0; i < tasks.size(); ++i) tasks[i]->Finish(std::move(results[i]));
  return absl::OkStatus();
}

void ModelWorker::RecordOutcome(bool answered) {
  if (answered) {
    consecutive_failures_ = 0;
    if (!healthy_) {
      healthy_ = true;
      if (options_.on_health_change) options_.on_health_change(true);
    }
    return;
  }
  ++consecutive_failures_;
  if (!healthy_ || consecutive_failures_ < kMaxConsecutiveFailures) return;
  // A broken instance, or inputs this model cannot take? A synthetic image tells them apart,
  // so that a client sending such inputs cannot take the replica out of rotation.
  const absl::Status probe = Probe();
  if (probe.ok()) {
    spdlog::warn(
        "{} batches in a row failed on every image, but the model on {} answers a "
        "synthetic image: input-specific failures, instance kept healthy",
        consecutive_failures_, runtime_->device().str());
    consecutive_failures_ = 0;
    return;
  }
  spdlog::error("{}", probe.ToString());
  healthy_ = false;
  if (options_.on_health_change) options_.on_health_change(false);
}

}  // namespace dinov3::engine
