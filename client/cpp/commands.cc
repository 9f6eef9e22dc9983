// The commands of dinov3-client; see commands.h.
#include "client/cpp/commands.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cpp/dense_assembler.h"
#include "client/cpp/npy_writer.h"
#include "client/cpp/tensor_decode.h"
#include "dinov3/v1/embedding.grpc.pb.h"
#include "google/protobuf/text_format.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/common/status_macros.h"

namespace dinov3::client {
namespace {

using HealthStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

absl::Status ToAbsl(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

std::string FileName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

void AppendJsonString(absl::string_view text, std::string& json) {
  json.push_back('"');
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      json.push_back('\\');
      json.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppendFormat(&json, "\\u%04x", static_cast<unsigned char>(c));
    } else {
      json.push_back(c);
    }
  }
  json.push_back('"');
}

// Shortest text that reads back to the same float; null for NaN and infinities.
void AppendJsonFloat(float value, std::string& json) {
  if (!std::isfinite(value)) {
    json.append("null");
    return;
  }
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  json.append(buffer, result.ptr);
}

void AppendJsonValue(float value, std::string& json) { AppendJsonFloat(value, json); }
void AppendJsonValue(int value, std::string& json) { absl::StrAppend(&json, value); }

// Appends values[offset...] as nested arrays following shape[axis...]; advances offset.
template <typename Value>
void AppendJsonArray(const std::vector<Value>& values, const std::vector<int64_t>& shape,
                     size_t axis, size_t& offset, std::string& json) {
  if (axis == shape.size()) {
    AppendJsonValue(values[offset++], json);
    return;
  }
  json.push_back('[');
  for (int64_t i = 0; i < shape[axis]; ++i) {
    if (i > 0) json.push_back(',');
    AppendJsonArray(values, shape, axis + 1, offset, json);
  }
  json.push_back(']');
}

// The shape of the values a tensor stores: BINARY's last dimension is its packed bytes.
std::vector<int64_t> StoredShape(const v1::Tensor& tensor) {
  std::vector<int64_t> shape(tensor.shape().begin(), tensor.shape().end());
  if (tensor.dtype() == v1::BINARY && !shape.empty()) shape.back() = (shape.back() + 7) / 8;
  return shape;
}

// Float tensors as numbers; compact ones as the stored integers (plus "<name>_scales" for
// INT8 and UINT8), which is what a vector database takes.
absl::Status AppendJsonTensor(absl::string_view name, const v1::Tensor& tensor, std::string& json) {
  const auto bad = [&](const absl::Status& status) {
    return absl::InternalError(
        absl::StrCat("server sent a bad ", name, " tensor: ", status.message()));
  };
  absl::StrAppend(&json, ",\"", name, "\":");
  size_t offset = 0;
  if (!IsCompact(tensor.dtype())) {
    absl::StatusOr<std::vector<float>> values = DecodeTensor(tensor);
    if (!values.ok()) return bad(values.status());
    AppendJsonArray(*values, StoredShape(tensor), 0, offset, json);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<int>> values = CompactValues(tensor);
  if (!values.ok()) return bad(values.status());
  AppendJsonArray(*values, StoredShape(tensor), 0, offset, json);
  if (tensor.scales_size() > 0) {
    const std::vector<float> scales(tensor.scales().begin(), tensor.scales().end());
    std::vector<int64_t> shape = StoredShape(tensor);
    shape.pop_back();
    absl::StrAppend(&json, ",\"", name, "_scales\":");
    offset = 0;
    AppendJsonArray(scales, shape, 0, offset, json);
  }
  return absl::OkStatus();
}

// Writes `tensor` as .npy: float32 and float16 bytes unchanged, bfloat16 widened to float32,
// INT8 / UINT8 / BINARY as their stored bytes (int8, uint8, uint8 packed bits); the INT8 and
// UINT8 scales go to `<path without .npy>.scales.npy` (float32, one per vector).
absl::Status WriteTensorNpy(const std::string& path, const v1::Tensor& tensor) {
  RETURN_IF_ERROR(ValidateTensor(tensor));
  const std::vector<int64_t> shape = StoredShape(tensor);
  if (tensor.scales_size() > 0) {
    const std::vector<int64_t> vectors(shape.begin(), shape.end() - 1);
    absl::string_view stem = path;
    absl::ConsumeSuffix(&stem, ".npy");
    const std::string scales_path = absl::StrCat(stem, ".scales.npy");
    RETURN_IF_ERROR(
        WriteNpy(scales_path, NpyDType::kFloat32, vectors,
                 absl::string_view(reinterpret_cast<const char*>(tensor.scales().data()),
                                   tensor.scales_size() * sizeof(float))));
  }
  switch (tensor.dtype()) {
    case v1::FLOAT32:
      return WriteNpy(path, NpyDType::kFloat32, shape, tensor.data());
    case v1::FLOAT16:
      return WriteNpy(path, NpyDType::kFloat16, shape, tensor.data());
    case v1::INT8:
      return WriteNpy(path, NpyDType::kInt8, shape, tensor.data());
    case v1::UINT8:
    case v1::BINARY:
      return WriteNpy(path, NpyDType::kUint8, shape, tensor.data());
    default: {
      ASSIGN_OR_RETURN(const std::vector<float> values, DecodeTensor(tensor));
      return WriteNpy(path, NpyDType::kFloat32, shape,
                      absl::string_view(reinterpret_cast<const char*>(values.data()),
                                        values.size() * sizeof(float)));
    }
  }
}

// The tensors of `embedding` (an Embedding or a LayerEmbedding) that the server filled, with
// their output names.
template <typename EmbeddingMessage>
std::vector<std::pair<const char*, const v1::Tensor*>> PresentTensors(
    const EmbeddingMessage& embedding) {
  std::vector<std::pair<const char*, const v1::Tensor*>> tensors;
  if (embedding.has_cls()) tensors.emplace_back("cls", &embedding.cls());
  if (embedding.has_pooled()) tensors.emplace_back("pooled", &embedding.pooled());
  if (embedding.has_patch_tokens()) {
    tensors.emplace_back("patch_tokens", &embedding.patch_tokens());
  }
  if (embedding.has_registers()) tensors.emplace_back("registers", &embedding.registers());
  return tensors;
}

absl::Status PrintJson(const v1::Embedding& embedding, std::ostream& out) {
  std::string json = "{\"id\":";
  AppendJsonString(embedding.id(), json);
  absl::StrAppend(&json, ",\"grid\":[", embedding.grid_height(), ",", embedding.grid_width(), "]");
  for (const auto& [name, tensor] : PresentTensors(embedding)) {
    RETURN_IF_ERROR(AppendJsonTensor(name, *tensor, json));
  }
  if (embedding.layers_size() > 0) {
    json.append(",\"layers\":[");
    for (int i = 0; i < embedding.layers_size(); ++i) {
      const v1::LayerEmbedding& layer = embedding.layers(i);
      absl::StrAppend(&json, i > 0 ? "," : "", "{\"layer\":", layer.layer());
      for (const auto& [name, tensor] : PresentTensors(layer)) {
        absl::Status status = AppendJsonTensor(name, *tensor, json);
        if (!status.ok()) {
          return absl::Status(status.code(),
                              absl::StrCat("layer ", layer.layer(), ": ", status.message()));
        }
      }
      json.push_back('}');
    }
    json.push_back(']');
  }
  json.append("}\n");
  out << json;
  return absl::OkStatus();
}

// Writes out_dir/<prefix>.<output>.npy for each tensor of `embedding` and prints the paths.
template <typename EmbeddingMessage>
absl::Status WriteTensorFiles(const EmbeddingMessage& embedding, const std::string& prefix,
                              const std::string& out_dir, std::ostream& out) {
  for (const auto& [name, tensor] : PresentTensors(embedding)) {
    const std::string path =
        (std::filesystem::path(out_dir) / absl::StrCat(prefix, ".", name, ".npy")).string();
    absl::Status status = WriteTensorNpy(path, *tensor);
    if (!status.ok()) {
      return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
    }
    out << path << "\n";
  }
  return absl::OkStatus();
}

// <file name>.<output>.npy, then <file name>.layer<i>.<output>.npy for each layer.
absl::Status WriteNpyFiles(const v1::Embedding& embedding, const std::string& file_name,
                           const std::string& out_dir, std::ostream& out) {
  RETURN_IF_ERROR(WriteTensorFiles(embedding, file_name, out_dir, out));
  for (const v1::LayerEmbedding& layer : embedding.layers()) {
    RETURN_IF_ERROR(
        WriteTensorFiles(layer, absl::StrCat(file_name, ".layer", layer.layer()), out_dir, out));
  }
  return absl::OkStatus();
}

// Sets the request's layers, last_layers and layer_norm when `selection` asks for layers (the
// server refuses layer_norm without them).
template <typename Request>
void SetLayers(const LayerSelection& selection, Request& request) {
  if (!selection.requested()) return;
  for (const int32_t layer : selection.layers) request.add_layers(layer);
  request.set_last_layers(selection.last_layers);
  request.set_layer_norm(selection.layer_norm);
}

// How many layers the server answers `selection` with.
int ExpectedLayers(const LayerSelection& selection) {
  return selection.layers.empty() ? static_cast<int>(selection.last_layers)
                                  : static_cast<int>(selection.layers.size());
}

// The reassembly of one EmbedDense stream: the final patch rows and each block's
// (DenseChunk.layer), the blocks in the order their first chunk came.
struct DenseGrids {
  DenseAssembler final_grid;
  std::vector<std::pair<int32_t, DenseAssembler>> layers;

  absl::Status Add(const v1::DenseChunk& chunk) {
    if (!chunk.has_layer()) return final_grid.Add(chunk);
    auto it = std::find_if(layers.begin(), layers.end(),
                           [&](const auto& entry) { return entry.first == chunk.layer(); });
    if (it == layers.end()) it = layers.emplace(layers.end(), chunk.layer(), DenseAssembler());
    absl::Status status = it->second.Add(chunk);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("layer ", chunk.layer(), ": ", status.message()));
    }
    return absl::OkStatus();
  }
};

// <out_path without .npy>.layer<layer>.npy
std::string DenseLayerPath(const std::string& out_path, int32_t layer) {
  absl::string_view stem = out_path;
  absl::ConsumeSuffix(&stem, ".npy");
  return absl::StrCat(stem, ".layer", layer, ".npy");
}

// Writes `grid` to `path` and prints its summary line.
absl::Status WriteDenseGrid(const std::string& path, const v1::Tensor& grid, int chunks,
                            std::ostream& out) {
  RETURN_IF_ERROR(WriteTensorNpy(path, grid));
  const std::vector<int64_t> stored = StoredShape(grid);
  const char* written = grid.dtype() == v1::FLOAT16 ? "float16"
                        : grid.dtype() == v1::INT8  ? "int8"
                        : IsCompact(grid.dtype())   ? "uint8"
                                                    : "float32";
  out << absl::StrFormat("%s: [%d, %d, %d] %s (%s on the wire, %d chunks)\n", path, stored[0],
                         stored[1], stored[2], written, DTypeName(grid.dtype()), chunks);
  return absl::OkStatus();
}

absl::Status CheckNpyOutput(const EmbedOptions& options) {
  std::set<std::string> names;
  for (const std::string& image : options.images) {
    if (!names.insert(FileName(image)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two images are named ", FileName(image), "; their .npy files would clash"));
    }
  }
  std::error_code error;
  std::filesystem::create_directories(options.out_dir, error);
  if (error) {
    return absl::UnknownError(
        absl::StrCat("cannot create ", options.out_dir, ": ", error.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::UnknownError(absl::StrCat("cannot read ", path));
  return bytes;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ConnectionOptions& connection) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // patch tokens of many images exceed the 4 MiB default
  args.SetMaxSendMessageSize(-1);
  if (!connection.tls) {
    return grpc::CreateCustomChannel(connection.server, grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions ssl;
  if (!connection.tls_ca_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(connection.tls_ca_file));
  }
  if (!connection.tls_cert_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFile(connection.tls_cert_file));
    ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFile(connection.tls_key_file));
  }
  return grpc::CreateCustomChannel(connection.server, grpc::SslCredentials(ssl), args);
}

// The deadline and the API key of one call.
void SetUpContext(const ConnectionOptions& connection, grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(connection.timeout_seconds)));
  if (!connection.api_key.empty()) {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", connection.api_key));
  }
}

absl::StatusOr<std::vector<v1::Output>> ParseOutputs(absl::string_view list) {
  std::vector<v1::Output> outputs;
  for (absl::string_view name : absl::StrSplit(list, ',', absl::SkipWhitespace())) {
    name = absl::StripAsciiWhitespace(name);
    v1::Output output;
    if (name == "cls") {
      output = v1::CLS;
    } else if (name == "pooled") {
      output = v1::POOLED;
    } else if (name == "patch_tokens") {
      output = v1::PATCH_TOKENS;
    } else if (name == "registers") {
      output = v1::REGISTERS;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown output '", name, "' (expected cls, pooled, patch_tokens or registers)"));
    }
    if (std::find(outputs.begin(), outputs.end(), output) != outputs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("output '", name, "' given twice"));
    }
    outputs.push_back(output);
  }
  return outputs;
}

absl::StatusOr<std::vector<int32_t>> ParseLayers(absl::string_view list) {
  std::vector<int32_t> layers;
  if (absl::StripAsciiWhitespace(list).empty()) return layers;
  for (absl::string_view item : absl::StrSplit(list, ',')) {
    item = absl::StripAsciiWhitespace(item);
    int32_t layer = 0;
    if (!absl::SimpleAtoi(item, &layer)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad layer index '", item, "' in '", list,
                       "' (expected comma-separated integers such as 0,-1)"));
    }
    layers.push_back(layer);
  }
  return layers;
}

absl::StatusOr<v1::ResizeMode> ParseResizeMode(absl::string_view name) {
  if (name == "fixed") return v1::RESIZE_FIXED;
  if (name == "crop") return v1::RESIZE_SHORTER_SIDE_CENTER_CROP;
  if (name == "keep_aspect") return v1::RESIZE_KEEP_ASPECT;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown preprocess mode '", name, "' (expected fixed, crop or keep_aspect)"));
}

absl::Status RunInfo(const ConnectionOptions& connection, std::ostream& out) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = v1::EmbeddingService::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  v1::GetModelInfoRequest request;
  request.set_model(connection.model);
  v1::ModelInfo info;
  RETURN_IF_ERROR(ToAbsl(stub->GetModelInfo(&context, request, &info)));
  std::string text;
  google::protobuf::TextFormat::PrintToString(info, &text);
  out << text;
  return absl::OkStatus();
}

absl::Status RunListModels(const ConnectionOptions& connection, std::ostream& out) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = v1::EmbeddingService::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  v1::ListModelsResponse response;
  RETURN_IF_ERROR(ToAbsl(stub->ListModels(&context, v1::ListModelsRequest(), &response)));
  for (const v1::ModelStatus& model : response.models()) {
    out << model.name() << " " << v1::ModelStatus::State_Name(model.state())
        << (model.is_default() ? " default" : "");
    if (model.has_info()) {
      const v1::ModelInfo& info = model.info();
      out << " " << info.variant() << " dim=" << info.embed_dim() << " " << info.model_dtype()
          << " on " << info.device();
    }
    if (!model.message().empty()) out << ": " << model.message();
    out << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunLoadModel(const ConnectionOptions& connection, const std::string& name,
                          std::ostream& out) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = v1::ModelAdmin::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  v1::LoadModelRequest request;
  request.set_name(name);
  v1::LoadModelResponse response;
  RETURN_IF_ERROR(ToAbsl(stub->LoadModel(&context, request, &response)));
  const v1::ModelInfo& info = response.model().info();
  out << name << (response.replaced() ? " replaced by " : " loaded: ") << info.variant() << "@"
      << info.weights_sha256().substr(0, 12) << " after " << response.switch_seconds() << " s";
  if (response.replaced())
    out << "; the old export freed after " << response.retire_seconds() << " s more";
  out << "\n";
  return absl::OkStatus();
}

absl::Status RunUnloadModel(const ConnectionOptions& connection, const std::string& name,
                            std::ostream& out) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = v1::ModelAdmin::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  v1::UnloadModelRequest request;
  request.set_name(name);
  v1::UnloadModelResponse response;
  RETURN_IF_ERROR(ToAbsl(stub->UnloadModel(&context, request, &response)));
  out << name << " unloaded and freed after " << response.seconds() << " s\n";
  return absl::OkStatus();
}

absl::StatusOr<HealthStatus> RunHealth(const ConnectionOptions& connection,
                                       const std::string& service, std::ostream& out) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  RETURN_IF_ERROR(ToAbsl(stub->Check(&context, request, &response)));
  out << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status();
}

absl::Status RunEmbed(const ConnectionOptions& connection, const EmbedOptions& options,
                      std::ostream& out) {
  if (options.format == OutputFormat::kNpy) RETURN_IF_ERROR(CheckNpyOutput(options));
  v1::EmbedRequest request;
  for (const std::string& path : options.images) {
    v1::Image* image = request.add_images();
    ASSIGN_OR_RETURN(*image->mutable_encoded(), ReadFile(path));
    image->set_id(FileName(path));
  }
  for (const v1::Output output : options.outputs) request.add_outputs(output);
  request.set_dtype(options.dtype);
  request.set_l2_normalize(options.l2_normalize);
  *request.mutable_preprocess() = options.preprocess;
  request.set_request_id("dinov3-client");
  request.set_model(connection.model);
  SetLayers(options.layers, request);

  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = v1::EmbeddingService::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  v1::EmbedResponse response;
  RETURN_IF_ERROR(ToAbsl(stub->Embed(&context, request, &response)));
  if (response.embeddings_size() != request.images_size()) {
    return absl::InternalError(absl::StrCat("server returned ", response.embeddings_size(),
                                            " embeddings for ", request.images_size(), " images"));
  }
  const int expected_layers = ExpectedLayers(options.layers);
  for (const v1::Embedding& embedding : response.embeddings()) {
    if (embedding.layers_size() != expected_layers) {
      return absl::InternalError(absl::StrCat("server returned ", embedding.layers_size(),
                                              " layers for ", embedding.id(), ", asked for ",
                                              expected_layers));
    }
  }
  for (int i = 0; i < response.embeddings_size(); ++i) {
    const v1::Embedding& embedding = response.embeddings(i);
    if (options.format == OutputFormat::kJson) {
      RETURN_IF_ERROR(PrintJson(embedding, out));
    } else {
      RETURN_IF_ERROR(WriteNpyFiles(embedding, FileName(options.images[i]), options.out_dir, out));
    }
  }
  out.flush();
  return absl::OkStatus();
}

absl::Status RunDense(const ConnectionOptions& connection, const DenseOptions& options,
                      std::ostream& out) {
  v1::EmbedDenseRequest request;
  ASSIGN_OR_RETURN(*request.mutable_image()->mutable_encoded(), ReadFile(options.image));
  request.mutable_image()->set_id(FileName(options.image));
  request.set_dtype(options.dtype);
  request.set_l2_normalize(options.l2_normalize);
  *request.mutable_preprocess() = options.preprocess;
  request.set_request_id("dinov3-client");
  request.set_rows_per_chunk(options.rows_per_chunk);
  request.set_model(connection.model);
  SetLayers(options.layers, request);

  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = v1::EmbeddingService::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  std::unique_ptr<grpc::ClientReader<v1::DenseChunk>> reader = stub->EmbedDense(&context, request);
  DenseGrids grids;
  absl::Status chunk_status;
  v1::DenseChunk chunk;
  while (reader->Read(&chunk)) {
    if (chunk_status.ok()) chunk_status = grids.Add(chunk);
    if (!chunk_status.ok()) context.TryCancel();
  }
  const grpc::Status rpc_status = reader->Finish();
  if (!chunk_status.ok()) {
    return absl::InternalError(absl::StrCat("bad reply: ", chunk_status.message()));
  }
  RETURN_IF_ERROR(ToAbsl(rpc_status));
  const int expected_layers = ExpectedLayers(options.layers);
  if (static_cast<int>(grids.layers.size()) != expected_layers) {
    return absl::InternalError(absl::StrCat("bad reply: ", grids.layers.size(),
                                            " layers streamed, asked for ", expected_layers));
  }
  // Every grid is checked before any file is written.
  const int chunks = grids.final_grid.chunks();
  absl::StatusOr<v1::Tensor> grid = grids.final_grid.Finish();
  if (!grid.ok()) return absl::InternalError(absl::StrCat("bad reply: ", grid.status().message()));
  std::vector<std::pair<int, v1::Tensor>> layer_grids;  // chunks, grid
  for (auto& [layer, assembler] : grids.layers) {
    const int layer_chunks = assembler.chunks();
    absl::StatusOr<v1::Tensor> layer_grid = assembler.Finish();
    if (!layer_grid.ok()) {
      return absl::InternalError(
          absl::StrCat("bad reply: layer ", layer, ": ", layer_grid.status().message()));
    }
    layer_grids.emplace_back(layer_chunks, *std::move(layer_grid));
  }
  RETURN_IF_ERROR(WriteDenseGrid(options.out_path, *grid, chunks, out));
  for (size_t i = 0; i < layer_grids.size(); ++i) {
    const auto& [layer_chunks, layer_grid] = layer_grids[i];
    RETURN_IF_ERROR(WriteDenseGrid(DenseLayerPath(options.out_path, grids.layers[i].first),
                                   layer_grid, layer_chunks, out));
  }
  return absl::OkStatus();
}

}  // namespace dinov3::client
