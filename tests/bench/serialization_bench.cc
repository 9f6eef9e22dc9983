// dinov3-serialization-bench: the cost of putting dense features on the wire and reading them
// back, apart from the model: one 448x448 vitb16 image's patch tokens ([784, 768], 28x28
// patches of 768 floats) in float32 and float16, through each step the server and the client
// take:
//   EncodeOutputs  - output tensor -> host bytes of the wire dtype (server/engine)
//   MoveToProto    - bytes -> EmbedResponse (a move, no copy)
//   Serialize      - EmbedResponse -> wire bytes
//   Parse          - wire bytes -> EmbedResponse (client)
//   DecodeTensor   - Tensor bytes -> floats (client)
//   RoundTrip      - all of the above
// Each benchmark reports real time and the counter wire_bytes (serialized response size).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <string>
#include <utility>

#include "client/cpp/tensor_decode.h"
#include "dinov3/v1/embedding.pb.h"
#include "server/engine/output_encoder.h"
#include "server/service/proto_conversion.h"

namespace {

using dinov3::DType;

constexpr int kGrid = 28;  // 448 / 16
constexpr int kDim = 768;  // vitb16

const torch::Tensor& PatchTokens() {
  static const torch::Tensor tokens = torch::randn({kGrid * kGrid, kDim});
  return tokens;
}

dinov3::EmbeddingResult Encode(DType dtype) {
  dinov3::engine::ImageOutputs outputs;
  outputs.patch_tokens = PatchTokens();
  dinov3::engine::EncodeOptions options;
  options.outputs.patch_tokens = true;
  options.dtype = dtype;
  return dinov3::engine::EncodeOutputs(outputs, options, kGrid, kGrid);
}

dinov3::v1::EmbedResponse Response(DType dtype) {
  dinov3::v1::EmbedResponse response;
  dinov3::service::MoveToProto(Encode(dtype), response.add_embeddings());
  return response;
}

void SetWireBytes(benchmark::State& state, DType dtype) {
  const size_t bytes = Response(dtype).ByteSizeLong();
  state.counters["wire_bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void EncodeOutputs(benchmark::State& state, DType dtype) {
  for (auto _ : state) benchmark::DoNotOptimize(Encode(dtype));
  SetWireBytes(state, dtype);
}

void MoveToProto(benchmark::State& state, DType dtype) {
  for (auto _ : state) {
    state.PauseTiming();
    dinov3::EmbeddingResult result = Encode(dtype);
    dinov3::v1::EmbedResponse response;
    state.ResumeTiming();
    dinov3::service::MoveToProto(std::move(result), response.add_embeddings());
    benchmark::DoNotOptimize(response);
  }
  SetWireBytes(state, dtype);
}

void Serialize(benchmark::State& state, DType dtype) {
  const dinov3::v1::EmbedResponse response = Response(dtype);
  std::string wire;
  for (auto _ : state) {
    response.SerializeToString(&wire);
    benchmark::DoNotOptimize(wire.data());
  }
  SetWireBytes(state, dtype);
}

void Parse(benchmark::State& state, DType dtype) {
  const std::string wire = Response(dtype).SerializeAsString();
  for (auto _ : state) {
    dinov3::v1::EmbedResponse parsed;
    benchmark::DoNotOptimize(parsed.ParseFromString(wire));
  }
  SetWireBytes(state, dtype);
}

void DecodeTensor(benchmark::State& state, DType dtype) {
  const dinov3::v1::EmbedResponse response = Response(dtype);
  for (auto _ : state) {
    benchmark::DoNotOptimize(dinov3::client::DecodeTensor(response.embeddings(0).patch_tokens()));
  }
  SetWireBytes(state, dtype);
}

void RoundTrip(benchmark::State& state, DType dtype) {
  std::string wire;
  for (auto _ : state) {
    dinov3::v1::EmbedResponse response;
    dinov3::service::MoveToProto(Encode(dtype), response.add_embeddings());
    response.SerializeToString(&wire);
    dinov3::v1::EmbedResponse parsed;
    parsed.ParseFromString(wire);
    benchmark::DoNotOptimize(dinov3::client::DecodeTensor(parsed.embeddings(0).patch_tokens()));
  }
  SetWireBytes(state, dtype);
}

void Register(const char* name, void (*fn)(benchmark::State&, DType)) {
  for (const auto& [dtype, dtype_name] :
       {std::pair{DType::kFloat32, "float32"}, std::pair{DType::kFloat16, "float16"}}) {
    benchmark::RegisterBenchmark((std::string(name) + "/" + dtype_name).c_str(), fn, dtype)
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  at::set_num_threads(1);  // the server encodes on the single dispatch thread of an instance
  Register("EncodeOutputs", EncodeOutputs);
  Register("MoveToProto", MoveToProto);
  Register("Serialize", Serialize);
  Register("Parse", Parse);
  Register("DecodeTensor", DecodeTensor);
  Register("RoundTrip", RoundTrip);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
