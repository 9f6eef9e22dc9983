// dinov3-model-bench: the ceiling. Throughput of the bare TorchScript module (ModelRuntime, the
// same code the server runs, no server around it) at each batch size, in-process, run the way
// the server's model worker runs it (server/engine/model_worker.cc), and the machine's GEMM rate
// on the same threads. Google Benchmark; its --benchmark_* flags work.
//
//   dinov3-model-bench --model=M.pt [--device=cpu] [--threads=0] [--batches=1,2,4,8,16,32]
//       [--image_size=224] [--warmup_batch=8] [--gemm=float32,bfloat16] [--gemm_size=2048]
//       [--on_main_thread] [--benchmark_format=json --benchmark_out=F]
//
// As in the server:
// - Everything runs on one thread of its own, the server's dispatch thread: ModelWorker's own
//   PrepareThread sets its intra-op thread count (LibTorch's OpenMP pool is per calling thread)
//   and warms up (batch 1 and --warmup_batch, twice each, grey images); then every forward runs
//   there. Not on the main thread: there glibc's main heap gives the freed activations back to
//   the kernel after each forward, and the next forward page-faults them in again (vits16 batch
//   8: ~4x the faults of the dispatch thread, ~50,000 against ~12,000, and ~70 ms more kernel
//   time per forward; this benchmark timed 382 ms where the server's forward took 316 ms).
//   --on_main_thread runs there anyway, to show the difference.
// - The input is what the worker builds: ImageToModelInput of random RGB8 images (what
//   dinov3-bench sends), stacked; built before the timed loop, so the ceiling is the forward.
// - On a CUDA device the forwards run on an instance stream, synchronised after each one.
//
// Benchmarks: "Forward/batch:B/size:S", real time per forward (ms), counters images_per_second
// and page_faults (minor page faults of the process per forward); with --gemm, also
// "Gemm/dtype:D/n:N" (an N x N x N matmul into a preallocated output), counter gflops. The first
// forwards of each batch size run untimed (TorchScript profiles and optimises during them).
#include <benchmark/benchmark.h>
#include <c10/core/StreamGuard.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/runtime/model_runtime.h"
#include "server/engine/device_stream.h"
#include "server/engine/image_tensor.h"
#include "server/engine/model_worker.h"

ABSL_FLAG(std::string, model, "", "TorchScript file written by python -m model.export");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N");
ABSL_FLAG(int, threads, 0, "intra-op threads (0 = the server's default: all cores on CPU)");
ABSL_FLAG(std::string, batches, "1,2,4,8,16,32", "batch sizes to measure");
ABSL_FLAG(int, image_size, 0, "square input side in pixels (0 = the model's default)");
ABSL_FLAG(int, warmup_batch, 0,
          "the server's max_batch_size, warmed up as the server does (0 = the largest batch)");
ABSL_FLAG(std::string, gemm, "", "also the GEMM rate in these dtypes (float32, bfloat16)");
ABSL_FLAG(int, gemm_size, 2048, "N of the N x N x N GEMM");
ABSL_FLAG(bool, on_main_thread, false,
          "run on the main thread (not as the server does; shows the cost of glibc's main heap)");

namespace {

using dinov3::model::ModelRuntime;

constexpr int kUntimedRuns = 2;  // per batch size, after the server's warm-up

int64_t MinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

// The input of a batch as ModelWorker::RunTasksOrThrow builds it: one random RGB8 image per
// slot (dinov3-bench's generator: uniform bytes), each through ImageToModelInput, stacked.
torch::Tensor ServerInput(const ModelRuntime& runtime, int batch, int size) {
  const dinov3::model::ModelMetadata& m = runtime.metadata();
  const dinov3::engine::Normalization norm{m.image_mean, m.image_std};
  const dinov3::ResizePlan plan{size, size, 0, 0, size, size, dinov3::Interpolation::kBilinear};
  std::vector<torch::Tensor> inputs;
  for (int i = 0; i < batch; ++i) {
    std::mt19937_64 engine(i);
    dinov3::RgbImage image{size, size, std::vector<uint8_t>(static_cast<size_t>(size) * size * 3)};
    for (uint8_t& p : image.pixels) p = static_cast<uint8_t>(engine() & 0xff);
    inputs.push_back(dinov3::engine::ImageToModelInput(image, plan, norm, runtime.device()));
  }
  return torch::stack(inputs);
}

// What the benchmarks share; lives on the dispatch thread's stack while they run.
struct Context {
  const ModelRuntime* runtime = nullptr;
  std::optional<c10::Stream> stream;  // CUDA only
  std::set<int> warmed;               // batch sizes already run untimed
};

void Forward(benchmark::State& state, Context* context, int batch, int size) {
  const ModelRuntime& runtime = *context->runtime;
  c10::OptionalStreamGuard stream_guard(context->stream);
  c10::InferenceMode inference;
  const torch::Tensor input = ServerInput(runtime, batch, size);
  dinov3::engine::SynchronizeStream(context->stream);
  const auto run = [&] {
    absl::StatusOr<dinov3::model::ModelOutputs> out = runtime.Forward(input);
    dinov3::engine::SynchronizeStream(context->stream);  // as the worker: the forward's end
    if (!out.ok()) {
      state.SkipWithError(std::string(out.status().message()).c_str());
      return false;
    }
    benchmark::DoNotOptimize(out->cls.data_ptr());
    return true;
  };
  if (context->warmed.insert(batch).second) {
    for (int i = 0; i < kUntimedRuns; ++i) {
      if (!run()) return;
    }
  }
  const int64_t faults = MinorFaults();
  for (auto _ : state) {
    if (!run()) return;
  }
  state.counters["page_faults"] = benchmark::Counter(static_cast<double>(MinorFaults() - faults),
                                                     benchmark::Counter::kAvgIterations);
  state.counters["images_per_second"] =
      benchmark::Counter(batch, benchmark::Counter::kIsIterationInvariantRate);
}

// An n x n x n matmul in `dtype` on the same thread and intra-op threads as the forwards.
void Gemm(benchmark::State& state, Context* context, torch::ScalarType dtype, int n) {
  c10::OptionalStreamGuard stream_guard(context->stream);
  c10::InferenceMode inference;
  const auto options = torch::TensorOptions(context->runtime->device()).dtype(dtype);
  const torch::Tensor a = torch::randn({n, n}, options);
  const torch::Tensor b = torch::randn({n, n}, options);
  torch::Tensor c = torch::empty({n, n}, options);
  for (int i = 0; i < kUntimedRuns; ++i) torch::mm_out(c, a, b);
  dinov3::engine::SynchronizeStream(context->stream);
  for (auto _ : state) {
    torch::mm_out(c, a, b);
    dinov3::engine::SynchronizeStream(context->stream);
  }
  state.counters["gflops"] = benchmark::Counter(2e-9 * n * n * static_cast<double>(n),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

// The dispatch thread's work: the server worker's PrepareThread (intra-op threads, warm-up),
// then every benchmark.
absl::Status RunBenchmarks(Context* context, int threads, int warmup_batch) {
  dinov3::engine::WorkerOptions options;
  options.intra_op_threads = context->runtime->device().is_cuda() ? 0 : threads;
  options.warmup_max_batch_size = warmup_batch;
  dinov3::engine::ModelWorker worker(context->runtime, options);
  if (absl::Status s = worker.PrepareThread(); !s.ok()) return s;
  absl::StatusOr<std::optional<c10::Stream>> stream =
      dinov3::engine::NewInstanceStream(context->runtime->device());
  if (!stream.ok()) return stream.status();
  context->stream = *stream;
  benchmark::AddCustomContext("intra_op_threads", std::to_string(at::get_num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int>> ParseBatches(const std::string& text) {
  std::vector<int> batches;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int batch = 0;
    if (!absl::SimpleAtoi(item, &batch) || batch <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad batch size '", item, "'"));
    }
    batches.push_back(batch);
  }
  return batches;
}

absl::Status RegisterGemms(Context* context, const std::string& dtypes, int n) {
  for (absl::string_view name : absl::StrSplit(dtypes, ',', absl::SkipEmpty())) {
    torch::ScalarType dtype;
    if (name == "float32") {
      dtype = torch::kFloat32;
    } else if (name == "bfloat16") {
      dtype = torch::kBFloat16;
    } else if (name == "float16") {
      dtype = torch::kFloat16;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("bad GEMM dtype '", name, "'"));
    }
    benchmark::RegisterBenchmark(absl::StrCat("Gemm/dtype:", name, "/n:", n).c_str(), Gemm, context,
                                 dtype, n)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  return absl::OkStatus();
}

int Fail(absl::string_view message, int code = 1) {
  std::cerr << "dinov3-model-bench: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_model);
  if (path.empty()) return Fail("--model is required", 2);
  // No probe: like the server, so the first forwards TorchScript profiles have the real shape
  // (a probe with one patch would leave the optimised graph specialised for the wrong size).
  auto runtime = ModelRuntime::Load(path, absl::GetFlag(FLAGS_device), /*probe=*/false);
  if (!runtime.ok()) return Fail(runtime.status().message());
  absl::StatusOr<std::vector<int>> batches = ParseBatches(absl::GetFlag(FLAGS_batches));
  if (!batches.ok()) return Fail(batches.status().message(), 2);
  if (batches->empty()) return Fail("--batches is empty", 2);
  const int threads = absl::GetFlag(FLAGS_threads) > 0
                          ? absl::GetFlag(FLAGS_threads)
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int size = absl::GetFlag(FLAGS_image_size) > 0 ? absl::GetFlag(FLAGS_image_size)
                                                       : (*runtime)->metadata().default_height;
  const int warmup_batch = absl::GetFlag(FLAGS_warmup_batch) > 0
                               ? absl::GetFlag(FLAGS_warmup_batch)
                               : *std::max_element(batches->begin(), batches->end());

  Context context;
  context.runtime = runtime->get();
  for (const int batch : *batches) {
    benchmark::RegisterBenchmark(absl::StrCat("Forward/batch:", batch, "/size:", size).c_str(),
                                 Forward, &context, batch, size)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  const absl::Status gemms =
      RegisterGemms(&context, absl::GetFlag(FLAGS_gemm), absl::GetFlag(FLAGS_gemm_size));
  if (!gemms.ok()) return Fail(gemms.message(), 2);
  benchmark::AddCustomContext("device", (*runtime)->device().str());
  benchmark::AddCustomContext("model", dinov3::model::DescribeModel((*runtime)->metadata()));
  benchmark::AddCustomContext("forward_thread",
                              absl::GetFlag(FLAGS_on_main_thread) ? "main" : "dispatch");
  absl::Status status;
  if (absl::GetFlag(FLAGS_on_main_thread)) {
    status = RunBenchmarks(&context, threads, warmup_batch);
  } else {
    std::thread dispatch([&] { status = RunBenchmarks(&context, threads, warmup_batch); });
    dispatch.join();
  }
  benchmark::Shutdown();
  return status.ok() ? 0 : Fail(status.message());
}
