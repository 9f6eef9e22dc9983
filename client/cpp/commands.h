// The commands of dinov3-client: info, health, embed and dense (flags live in client_main.cc).
//
// Each command opens a channel to `server` (plaintext, or TLS with the connection's TLS files),
// makes its calls with a deadline of `timeout_seconds` (and the API key, when set) and writes
// its result to `out`. Errors come back as absl::Status: gRPC
// failures keep their status code and message; local problems (unreadable image, unwritable
// output, malformed server reply) use NotFound / Unknown / Internal-style codes with a message
// that names the file or field. Nothing here exits the process. Not meant for concurrent use.
#ifndef DINOV3_CLIENT_CPP_COMMANDS_H_
#define DINOV3_CLIENT_CPP_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "dinov3/v1/embedding.pb.h"
#include "grpc/health/v1/health.pb.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace dinov3::client {

struct ConnectionOptions {
  std::string server = "localhost:50051";
  double timeout_seconds = 30;
  bool tls = false;                // TLS; the CA file, or else the system's roots, verify
  std::string tls_ca_file = "";    // PEM CA bundle that signed the server's certificate
  std::string tls_cert_file = "";  // PEM client certificate (mutual TLS), with tls_key_file
  std::string tls_key_file = "";
  std::string api_key = "";  // sent as "authorization: Bearer <key>"; "" = none
  // The served model every command addresses (EmbedRequest.model, GetModelInfo, the health
  // entry of `health`); "" = the server's default model.
  std::string model = "";
};

enum class OutputFormat { kJson, kNpy };

// Intermediate layers (EmbedRequest / EmbedDenseRequest layers, last_layers, layer_norm).
struct LayerSelection {
  std::vector<int32_t> layers;  // 0-based block indices, negative from the end
  uint32_t last_layers = 0;     // or the last n blocks (not both)
  bool layer_norm = true;       // final LayerNorm on each block's tokens; sent only with layers

  bool requested() const { return !layers.empty() || last_layers > 0; }
};

struct EmbedOptions {
  std::vector<std::string> images;  // paths of encoded image files; id = file name
  std::vector<v1::Output> outputs;  // empty = the server's default (cls, pooled)
  v1::DType dtype = v1::FLOAT32;
  bool l2_normalize = false;
  v1::Preprocess preprocess;
  OutputFormat format = OutputFormat::kJson;
  std::string out_dir;  // kNpy: where <file name>.<output>.npy files go (created if missing)
  LayerSelection layers;
};

struct DenseOptions {
  std::string image;     // path of an encoded image file
  std::string out_path;  // .npy file written with shape [grid_height, grid_width, dim]
  v1::DType dtype = v1::FLOAT32;
  bool l2_normalize = false;
  v1::Preprocess preprocess;
  uint32_t rows_per_chunk = 0;  // 0 = the server's choice
  LayerSelection layers;        // each block's grid goes to <out_path without .npy>.layer<i>.npy
};

// The connection every command uses: a channel to connection.server (plaintext, or TLS with
// its files; no message size limits), and per call the deadline and the API key.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ConnectionOptions& connection);
void SetUpContext(const ConnectionOptions& connection, grpc::ClientContext& context);

// The bytes of the file at `path` (NotFound when it cannot be opened).
absl::StatusOr<std::string> ReadFile(const std::string& path);

// "cls,pooled,patch_tokens,registers" (any subset, any order, no duplicates) -> outputs.
absl::StatusOr<std::vector<v1::Output>> ParseOutputs(absl::string_view list);
// "3,-1,0" (comma-separated 32-bit integers, negative allowed; "" = none) -> layer indices.
absl::StatusOr<std::vector<int32_t>> ParseLayers(absl::string_view list);
// "fixed" | "crop" | "keep_aspect" -> resize mode.
absl::StatusOr<v1::ResizeMode> ParseResizeMode(absl::string_view name);

// GetModelInfo, printed as protobuf text format.
absl::Status RunInfo(const ConnectionOptions& connection, std::ostream& out);

// ListModels; one line per model: name, state, "default" for the default model, variant,
// embedding dim, compute dtype and devices (or the failure message).
absl::Status RunListModels(const ConnectionOptions& connection, std::ostream& out);

// ModelAdmin.LoadModel / UnloadModel of `name` (connection.api_key must be an admin key);
// prints what happened and how long it took.
absl::Status RunLoadModel(const ConnectionOptions& connection, const std::string& name,
                          std::ostream& out);
absl::Status RunUnloadModel(const ConnectionOptions& connection, const std::string& name,
                            std::ostream& out);

// grpc.health.v1 Check for `service` ("" = the whole server); prints the status name.
absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus> RunHealth(
    const ConnectionOptions& connection, const std::string& service, std::ostream& out);

// One Embed call with all images. kJson: one JSON object per image and line, with "id",
// "grid" [h, w] and each returned tensor as (nested) float arrays (compact dtypes: the stored
// integers, with "<name>_scales" for int8/uint8). kNpy: one .npy file per image and tensor
// (float16 stays float16, bfloat16 becomes float32, compact dtypes keep their stored bytes,
// int8/uint8 scales in <name>.scales.npy); prints the paths. With options.layers, each image's
// JSON object has "layers": [{"layer": i, <outputs as above>}, ...] in the server's order, and
// kNpy writes <file name>.layer<i>.<output>.npy files too (i: the resolved 0-based block).
absl::Status RunEmbed(const ConnectionOptions& connection, const EmbedOptions& options,
                      std::ostream& out);

// EmbedDense; reassembles the chunks by row_start and writes the .npy file; prints a summary.
// With options.layers, each block's chunks (DenseChunk.layer) are reassembled apart and written
// to <out_path without .npy>.layer<i>.npy, one summary line each.
absl::Status RunDense(const ConnectionOptions& connection, const DenseOptions& options,
                      std::ostream& out);

}  // namespace dinov3::client

#endif  // DINOV3_CLIENT_CPP_COMMANDS_H_
