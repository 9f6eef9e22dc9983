// dinov3-model-bench: the ceiling. Throughput of the bare TorchScript module (ModelRuntime, the
// same code the server runs, no server around it) at each batch size, in-process, on one
// thread with the server's intra-op thread count. Google Benchmark; its --benchmark_* flags work.
//
//   dinov3-model-bench --model=M.pt [--device=cpu] [--threads=0] [--batches=1,2,4,8,16,32]
//       [--image_size=224] [--benchmark_format=json --benchmark_out=F]
//
// Each benchmark ("Forward/batch:B/size:S") reports real time per forward (ms) and the counter
// images_per_second. Outputs are brought to the host in each iteration, so a GPU forward is
// timed to its end. The first forwards of each shape run untimed (TorchScript profiles and
// optimises during them).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/runtime/model_runtime.h"

ABSL_FLAG(std::string, model, "", "TorchScript file written by python -m model.export");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 = the server's default: all cores on CPU)");
ABSL_FLAG(std::string, batches, "1,2,4,8,16,32", "batch sizes to measure");
ABSL_FLAG(int, image_size, 0, "square input side in pixels (0 = the model's default)");

namespace {

constexpr int kUntimedRuns = 4;

void Forward(benchmark::State& state, const dinov3::model::ModelRuntime* runtime, int batch,
             int size) {
  c10::InferenceMode inference;
  const torch::Tensor input = torch::randn({batch, 3, size, size});
  const auto run = [&] {
    absl::StatusOr<dinov3::model::ModelOutputs> out = runtime->Forward(input);
    if (!out.ok()) {
      state.SkipWithError(std::string(out.status().message()).c_str());
      return false;
    }
    benchmark::DoNotOptimize(out->cls.to(torch::kCPU).data_ptr());
    return true;
  };
  for (int i = 0; i < kUntimedRuns; ++i) {
    if (!run()) return;
  }
  for (auto _ : state) {
    if (!run()) return;
  }
  state.counters["images_per_second"] =
      benchmark::Counter(batch, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) {
    std::cerr << "dinov3-model-bench: --model is required\n";
    return 2;
  }
  // No probe: like the server, so the first forwards TorchScript profiles have the real shape
  // (a probe with one patch would leave the optimised graph specialised for the wrong size).
  auto runtime =
      dinov3::model::ModelRuntime::Load(path, absl::GetFlag(FLAGS_device), /*probe=*/false);
  if (!runtime.ok()) {
    std::cerr << "dinov3-model-bench: " << runtime.status().message() << "\n";
    return 1;
  }
  const int threads = absl::GetFlag(FLAGS_threads) > 0
                          ? absl::GetFlag(FLAGS_threads)
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!(*runtime)->device().is_cuda()) at::set_num_threads(threads);
  const int size = absl::GetFlag(FLAGS_image_size) > 0 ? absl::GetFlag(FLAGS_image_size)
                                                       : (*runtime)->metadata().default_height;
  for (absl::string_view item : absl::StrSplit(absl::GetFlag(FLAGS_batches), ',', absl::SkipEmpty())) {
    int batch = 0;
    if (!absl::SimpleAtoi(item, &batch) || batch <= 0) {
      std::cerr << "dinov3-model-bench: bad batch size '" << item << "'\n";
      return 2;
    }
    benchmark::RegisterBenchmark(absl::StrCat("Forward/batch:", batch, "/size:", size).c_str(),
                                 Forward, runtime->get(), batch, size)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  benchmark::AddCustomContext("device", (*runtime)->device().str());
  benchmark::AddCustomContext("intra_op_threads", std::to_string(at::get_num_threads()));
  benchmark::AddCustomContext("model", dinov3::model::DescribeModel((*runtime)->metadata()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
