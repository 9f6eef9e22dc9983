// dinov3-preprocess-bench: what one image costs before the model, by size class and stage.
//
// Inputs are made at start-up from one real photograph (--photo, default the 5640x3172 JPEG of
// Debian's mate-backgrounds, installed by scripts/setup.sh), scaled with INTER_AREA to each
// size class and re-encoded in memory (nothing is written to disk):
//   jpeg-0.3mp, jpeg-2mp, jpeg-12mp, jpeg-24mp    baseline JPEG, quality 90
//   jpeg-12mp-progressive                         progressive JPEG, quality 90
//   png-2mp, png-12mp                             PNG, compression 3
//   webp-2mp                                      WebP, quality 90
// Stages, each a benchmark of its own (real time, 1 thread unless noted), per class:
//   Header      CheckEncodedImage: format, byte and pixel limits from the header
//   Decode      DecodeImage: the server's full decode (OpenCV imdecode with EXIF orientation,
//               BGR -> RGB)
//   ImdecodeNoOrientation, BgrToRgb   the two parts of Decode alone
//   ImdecodeReduced/2,4,8             imdecode at 1/2, 1/4, 1/8 scale (IMREAD_REDUCED_COLOR_N:
//                                     libjpeg's DCT scaling for JPEG; decode + resize otherwise)
//   ToFloat     uint8 HWC -> contiguous float CHW * 1/255 (what ImageToModelInput does first)
//   Resize      antialiased bilinear resize of that float image to 224x224
//   Normalize   (x - mean) / std of the 224x224 result
//   ModelInput  ImageToModelInput on CPU: ToFloat + Resize + crop + Normalize (intra-op threads:
//               --threads, default 1)
// And what one image costs per path, everything one preprocess job does for it at 224x224:
//   CpuWorkerExact, CpuWorkerFast   a CPU worker's job (the preprocess pool builds the model
//               input): decode (full size / DECODE_FAST's reduced scale, counter `reduction`),
//               plan, WriteModelInput, on one thread as the pool runs it
//   CudaHostExact, CudaHostFast     what stays on the CPU for a CUDA worker: decode and plan (the
//               uint8 pixels then go to the device, which converts and resizes; the pinned copy
//               and upload need a GPU and are not timed here)
// Counters: megapixels, encoded_bytes. Measurements, not tests: BENCHMARKS.md has the numbers.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "server/engine/image_tensor.h"
#include "server/preprocess/image_decoder.h"
#include "server/preprocess/resize_plan.h"

ABSL_FLAG(std::string, photo, "/usr/share/backgrounds/mate/abstract/Elephants_5640x3172.jpg",
          "the real photograph the size classes are made from");
ABSL_FLAG(int, threads, 1, "intra-op threads of the tensor stages");

namespace {

using dinov3::RgbImage;
namespace preprocess = dinov3::preprocess;

struct SizeClass {
  std::string name;
  double megapixels;
  std::string extension;  // cv::imencode's
  std::vector<int> params;
};

struct Input {
  std::string name;
  std::string bytes;
  RgbImage image;  // decoded by the server's decoder
};

// Wider than the server's defaults: the 24 MP class must decode.
const preprocess::ImageLimits kLimits{256 << 20, 100'000'000, 8};

std::vector<SizeClass> SizeClasses() {
  const std::vector<int> jpeg = {cv::IMWRITE_JPEG_QUALITY, 90};
  return {{"jpeg-0.3mp", 0.3, ".jpg", jpeg},
          {"jpeg-2mp", 2, ".jpg", jpeg},
          {"jpeg-12mp", 12, ".jpg", jpeg},
          {"jpeg-24mp", 24, ".jpg", jpeg},
          {"jpeg-12mp-progressive", 12, ".jpg",
           {cv::IMWRITE_JPEG_QUALITY, 90, cv::IMWRITE_JPEG_PROGRESSIVE, 1}},
          {"png-2mp", 2, ".png", {cv::IMWRITE_PNG_COMPRESSION, 3}},
          {"png-12mp", 12, ".png", {cv::IMWRITE_PNG_COMPRESSION, 3}},
          {"webp-2mp", 2, ".webp", {cv::IMWRITE_WEBP_QUALITY, 90}}};
}

// Encoded bytes as a cv::Mat for imdecode (which only reads them).
cv::Mat Wrap(const std::string& bytes) {
  return cv::Mat(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
}

// The photo scaled to `megapixels` (aspect kept) and encoded as the class says.
std::string Encode(const cv::Mat& photo, const SizeClass& size_class) {
  const double scale = std::sqrt(size_class.megapixels * 1e6 / photo.total());
  cv::Mat scaled;
  cv::resize(photo, scaled, cv::Size(), scale, scale,
             scale < 1 ? cv::INTER_AREA : cv::INTER_CUBIC);
  std::vector<uchar> bytes;
  if (!cv::imencode(size_class.extension, scaled, bytes, size_class.params)) {
    std::fprintf(stderr, "cannot encode %s\n", size_class.name.c_str());
    std::exit(1);
  }
  return std::string(bytes.begin(), bytes.end());
}

std::vector<Input> MakeInputs(const std::string& photo_path) {
  std::ifstream in(photo_path, std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const cv::Mat photo = cv::imdecode(Wrap(file), cv::IMREAD_COLOR);
  if (photo.empty()) {
    std::fprintf(stderr, "cannot read the photo %s (install mate-backgrounds: scripts/setup.sh)\n",
                 photo_path.c_str());
    std::exit(1);
  }
  std::vector<Input> inputs;
  for (const SizeClass& size_class : SizeClasses()) {
    Input input{size_class.name, Encode(photo, size_class), {}};
    absl::StatusOr<RgbImage> image = preprocess::DecodeImage(input.bytes, kLimits);
    if (!image.ok()) {
      std::fprintf(stderr, "%s: %s\n", input.name.c_str(), image.status().ToString().c_str());
      std::exit(1);
    }
    input.image = *std::move(image);
    inputs.push_back(std::move(input));
  }
  return inputs;
}

torch::Tensor ToFloat(const RgbImage& image) {
  const torch::Tensor host = torch::from_blob(const_cast<uint8_t*>(image.pixels.data()),
                                              {image.height, image.width, 3}, torch::kUInt8);
  torch::Tensor x = host.permute({2, 0, 1}).unsqueeze(0).to(
      torch::kFloat32, /*non_blocking=*/false, /*copy=*/false, torch::MemoryFormat::Contiguous);
  return x.mul_(1.0f / 255.0f);
}

torch::Tensor Resize224(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>{224, 224})
                               .mode(torch::kBilinear)
                               .align_corners(false)
                               .antialias(true));
}

const dinov3::engine::Normalization kNorm{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};

// One preprocess job at the default 224x224 (embed_pipeline.cc): decode as `options` says, plan
// for the full size, and with `cpu_worker` build the model input.
void PreprocessJob(const std::string& bytes, const preprocess::PreprocessOptions& options,
                   bool cpu_worker) {
  const preprocess::ModelGeometry geometry;
  absl::StatusOr<preprocess::ReducedImage> decoded =
      preprocess::DecodeImageFor(bytes, kLimits, options, geometry);
  const absl::StatusOr<dinov3::ResizePlan> plan = preprocess::PlanResize(
      decoded->full_size.height, decoded->full_size.width, options, geometry);
  if (cpu_worker) {
    std::vector<float> input(size_t{3} * plan->out_height * plan->out_width);
    dinov3::engine::WriteModelInput(decoded->image, *plan, kNorm, input.data());
    benchmark::DoNotOptimize(input.data());
  }
  benchmark::DoNotOptimize(decoded->image.pixels.data());
}

void SetCounters(benchmark::State& state, const Input& input) {
  state.counters["megapixels"] = static_cast<double>(input.image.width) * input.image.height / 1e6;
  state.counters["encoded_bytes"] = static_cast<double>(input.bytes.size());
}

void RegisterAll(const std::vector<Input>& inputs) {
  auto add = [](const std::string& stage, const Input& input, auto body) {
    benchmark::RegisterBenchmark((stage + "/" + input.name).c_str(),
                                 [&input, body](benchmark::State& state) {
                                   body(state, input);
                                   SetCounters(state, input);
                                 })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  };
  for (const Input& input : inputs) {
    add("Header", input, [](benchmark::State& state, const Input& in) {
      for (auto _ : state) {
        benchmark::DoNotOptimize(preprocess::CheckEncodedImage(in.bytes, kLimits));
      }
    });
    add("Decode", input, [](benchmark::State& state, const Input& in) {
      for (auto _ : state) benchmark::DoNotOptimize(preprocess::DecodeImage(in.bytes, kLimits));
    });
    add("ImdecodeNoOrientation", input, [](benchmark::State& state, const Input& in) {
      for (auto _ : state) {
        benchmark::DoNotOptimize(
            cv::imdecode(Wrap(in.bytes), cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION));
      }
    });
    add("BgrToRgb", input, [](benchmark::State& state, const Input& in) {
      const cv::Mat bgr = cv::imdecode(Wrap(in.bytes), cv::IMREAD_COLOR);
      cv::Mat rgb;
      for (auto _ : state) cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    });
    for (auto [factor, flag] : {std::pair{2, cv::IMREAD_REDUCED_COLOR_2},
                                {4, cv::IMREAD_REDUCED_COLOR_4},
                                {8, cv::IMREAD_REDUCED_COLOR_8}}) {
      add("ImdecodeReduced/" + std::to_string(factor), input,
          [flag](benchmark::State& state, const Input& in) {
            for (auto _ : state) benchmark::DoNotOptimize(cv::imdecode(Wrap(in.bytes), flag));
          });
    }
    add("ToFloat", input, [](benchmark::State& state, const Input& in) {
      for (auto _ : state) benchmark::DoNotOptimize(ToFloat(in.image));
    });
    add("Resize", input, [](benchmark::State& state, const Input& in) {
      const torch::Tensor x = ToFloat(in.image);
      for (auto _ : state) benchmark::DoNotOptimize(Resize224(x));
    });
    add("Normalize", input, [](benchmark::State& state, const Input& in) {
      const torch::Tensor x = Resize224(ToFloat(in.image));
      const torch::Tensor mean = torch::tensor({0.485f, 0.456f, 0.406f}).view({3, 1, 1});
      const torch::Tensor std = torch::tensor({0.229f, 0.224f, 0.225f}).view({3, 1, 1});
      for (auto _ : state) benchmark::DoNotOptimize(((x[0] - mean) / std).contiguous());
    });
    add("ModelInput", input, [](benchmark::State& state, const Input& in) {
      const dinov3::ResizePlan plan{224, 224, 0, 0, 224, 224, dinov3::Interpolation::kBilinear};
      for (auto _ : state) {
        benchmark::DoNotOptimize(
            dinov3::engine::ImageToModelInput(in.image, plan, kNorm, torch::kCPU));
      }
    });
    for (const auto decode : {preprocess::DecodeMode::kExact, preprocess::DecodeMode::kFast}) {
      const std::string mode = decode == preprocess::DecodeMode::kFast ? "Fast" : "Exact";
      for (const bool cpu_worker : {true, false}) {
        add((cpu_worker ? "CpuWorker" : "CudaHost") + mode, input,
            [decode, cpu_worker](benchmark::State& state, const Input& in) {
              preprocess::PreprocessOptions options;
              options.decode = decode;
              for (auto _ : state) PreprocessJob(in.bytes, options, cpu_worker);
              const bool jpeg = preprocess::SniffFormat(in.bytes) == preprocess::ImageFormat::kJpeg;
              state.counters["reduction"] =
                  jpeg ? *preprocess::ChooseDecodeReduction(in.image.height, in.image.width,
                                                            options, preprocess::ModelGeometry())
                       : 1;
            });
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  absl::ParseCommandLine(argc, argv);
  torch::set_num_threads(absl::GetFlag(FLAGS_threads));
  static const std::vector<Input> inputs = MakeInputs(absl::GetFlag(FLAGS_photo));
  RegisterAll(inputs);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
