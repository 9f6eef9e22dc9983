#include "server/engine/host_input.h"

#include <ATen/Parallel.h>

#include <new>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_reason.h"

namespace dinov3::engine {
namespace {

// One intra-op thread on this thread, set the first time it prepares an input.
void UseOneIntraOpThread() {
  thread_local const bool set = [] {
    at::set_num_threads(1);
    return true;
  }();
  (void)set;
}

}  // namespace

absl::Status PrepareHostInput(batching::EmbedTask& task, const Normalization& norm) {
  UseOneIntraOpThread();
  c10::InferenceMode inference;
  const ResizePlan& plan = task.plan;
  try {
    std::vector<float> input(size_t{3} * plan.out_height * plan.out_width);
    WriteModelInput(task.image, plan, norm, input.data());
    task.input = std::move(input);
    task.image = RgbImage{};
    return absl::OkStatus();
  } catch (const c10::OutOfMemoryError&) {
  } catch (const std::bad_alloc&) {
  } catch (const std::exception& e) {
    const std::string what = e.what();
    return absl::InternalError(
        absl::StrCat("preprocessing failed: ", what.substr(0, what.find('\n'))));
  }
  return WithReason(absl::ResourceExhaustedError("not enough memory to preprocess the image"),
                    kReasonOutOfMemory);
}

}  // namespace dinov3::engine
