// dinov3-model-check FILE.pt: loads an exported model, prints its metadata, the output shapes of
// one forward pass on a random normalised input and its timing. Exit status 0 on success, 1 with
// the error message otherwise. The smoke check of the run command.
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "model/runtime/model_runtime.h"

ABSL_FLAG(std::string, device, "cpu", "Device to run on: cpu, cuda or cuda:N");
ABSL_FLAG(int, batch, 1, "Images per forward pass");
ABSL_FLAG(int, height, 0, "Input height in pixels (0 = the model's default)");
ABSL_FLAG(int, width, 0, "Input width in pixels (0 = the model's default)");
ABSL_FLAG(int, iterations, 5, "Timed forward passes after the first 4 (shown one by one)");

namespace {

using Clock = std::chrono::steady_clock;
constexpr int kShownRuns = 4;  // untimed in the mean: profiling, optimisation, first fused runs

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int Run(const std::string& path) {
  using dinov3::model::ModelRuntime;
  const Clock::time_point load_start = Clock::now();
  auto runtime = ModelRuntime::Load(path, absl::GetFlag(FLAGS_device));
  if (!runtime.ok()) {
    std::cerr << "error: " << runtime.status().message() << "\n";
    return 1;
  }
  const double load_ms = MillisecondsSince(load_start);
  const auto& m = (*runtime)->metadata();
  std::cout << "model: " << path << "\n  " << dinov3::model::DescribeModel(m) << "\n"
            << absl::StrFormat("  device=%s load=%.1f ms exported by torch %s\n",
                               (*runtime)->device().str(), load_ms, m.torch_version);

  const int h = absl::GetFlag(FLAGS_height) > 0 ? absl::GetFlag(FLAGS_height) : m.default_height;
  const int w = absl::GetFlag(FLAGS_width) > 0 ? absl::GetFlag(FLAGS_width) : m.default_width;
  const torch::Tensor input = torch::randn({absl::GetFlag(FLAGS_batch), 3, h, w});
  // Each run ends with its outputs on the host, so a GPU forward is timed to its end. The first
  // runs are shown one by one: TorchScript profiles and then optimises (and on CUDA compiles
  // fused kernels) during them; the mean is taken after them.
  absl::StatusOr<dinov3::model::ModelOutputs> out;
  const auto timed_run = [&]() -> double {
    const Clock::time_point start = Clock::now();
    out = (*runtime)->Forward(input);
    if (out.ok()) out->cls = out->cls.to(torch::kCPU);
    return MillisecondsSince(start);
  };
  std::vector<std::string> first_runs;
  for (int i = 0; i < kShownRuns; ++i) {
    first_runs.push_back(absl::StrFormat("%.1f", timed_run()));
    if (!out.ok()) {
      std::cerr << "error: " << out.status().message() << "\n";
      return 1;
    }
  }
  const int iterations = absl::GetFlag(FLAGS_iterations);
  double total_ms = 0;
  for (int i = 0; i < iterations; ++i) {
    total_ms += timed_run();
    if (!out.ok()) return 1;
  }
  const double mean_ms = iterations > 0 ? total_ms / iterations : 0.0;
  std::cout << "forward input=" << absl::StrJoin(input.sizes(), "x")
            << " cls=" << absl::StrJoin(out->cls.sizes(), "x")
            << " registers=" << absl::StrJoin(out->registers.sizes(), "x")
            << " patch_tokens=" << absl::StrJoin(out->patch_tokens.sizes(), "x") << "\n"
            << "timing first runs " << absl::StrJoin(first_runs, ", ") << " ms; "
            << absl::StrFormat("then mean_of_%d=%.1f ms\n", iterations, mean_ms);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Loads a DINOv3 TorchScript export and runs one forward pass.\n"
      "Usage: dinov3-model-check [flags] FILE.pt");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << "usage: dinov3-model-check [--device=cpu] [--batch=1] FILE.pt\n";
    return 2;
  }
  return Run(args[1]);
}
