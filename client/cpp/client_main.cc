// dinov3-client: command line client of the DINOv3 embedding service (flags and dispatch only;
// the commands are in commands.h). Exit status: 0 success, 1 error (printed as
// "error: <grpc code name>: <message>"), 2 usage error. `health` exits 0 only when SERVING.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "client/cpp/commands.h"
#include "client/cpp/pictures.h"
#include "client/cpp/tensor_decode.h"
#include "server/common/secret_file.h"

ABSL_FLAG(std::string, server, "localhost:50051", "Address of the service, host:port.");
ABSL_FLAG(double, timeout, 30, "Deadline of each call in seconds (> 0).");
ABSL_FLAG(bool, tls, false,
          "Connect with TLS (implied by the --tls_* files); without --tls_ca_file the system's "
          "roots verify the server.");
ABSL_FLAG(std::string, tls_ca_file, "", "PEM CA bundle that verifies the server's certificate.");
ABSL_FLAG(std::string, tls_cert_file, "", "PEM client certificate for mutual TLS.");
ABSL_FLAG(std::string, tls_key_file, "", "PEM private key of --tls_cert_file.");
ABSL_FLAG(std::string, api_key_file, "",
          "File whose first key line is the API key ('#' comments are skipped; default: "
          "$DINOV3_API_KEY, if set).");
ABSL_FLAG(std::string, model, "",
          "The served model to use (dinov3-client models lists them; \"\" = the server's "
          "default). health: that model's health entry.");
ABSL_FLAG(std::string, outputs, "cls,pooled",
          "embed: comma-separated outputs among cls, pooled, patch_tokens, registers.");
ABSL_FLAG(std::string, dtype, "float32",
          "embed, dense: wire dtype float32, float16, bfloat16, int8, uint8 or binary (floats "
          "print as numbers, float16 .npy files stay float16, bfloat16 becomes float32; int8, "
          "uint8 and binary print and write their stored integers, binary as packed bytes, "
          "with int8/uint8 scales beside them: NAME_scales in JSON, .scales.npy files).");
ABSL_FLAG(bool, l2_normalize, false,
          "embed, dense: L2-normalize cls, pooled and each patch token on the server.");
ABSL_FLAG(std::string, preprocess, "",
          "embed, dense: resize mode fixed (Hugging Face 224x224), crop (shorter side + centre "
          "crop) or keep_aspect (multiples of the patch size). Default: fixed for embed, "
          "keep_aspect for dense.");
ABSL_FLAG(int32_t, height, 0, "embed, dense: Preprocess.height (0 = the mode's default).");
ABSL_FLAG(int32_t, width, 0, "embed, dense: Preprocess.width (0 = the mode's default).");
ABSL_FLAG(int32_t, max_patches, 0,
          "embed, dense: Preprocess.max_patches for keep_aspect (0 = the server's limit).");
ABSL_FLAG(std::string, decode, "",
          "embed, dense: Preprocess.decode: exact (full-size decode) or fast (JPEG DCT scaling "
          "for photos at least 2x the target). Default: the server's (server.decode).");
ABSL_FLAG(std::string, layers, "",
          "embed, dense: intermediate blocks to return too, comma-separated 0-based indices "
          "(negative from the end: -1 = the last block).");
ABSL_FLAG(int32_t, last_layers, 0,
          "embed, dense: return the last N blocks too (instead of --layers; 0 = none).");
ABSL_FLAG(bool, layer_norm, true,
          "embed, dense: apply the final LayerNorm to the blocks of --layers / --last_layers "
          "(--nolayer_norm: the raw block outputs). Ignored without layers.");
ABSL_FLAG(int32_t, rows_per_chunk, 0, "dense: patch rows per chunk (0 = the server's choice).");
ABSL_FLAG(std::string, format, "json",
          "embed: json (one object per image and line on stdout) or npy (files under --out).");
ABSL_FLAG(std::string, out, "",
          "embed --format=npy: output directory for <file name>.<output>.npy files; "
          "dense: the output .npy file (required); pca: the output directory (required); "
          "similarity: the output .png file (required).");
ABSL_FLAG(int32_t, size, 768,
          "pca, similarity: pixels on the longer side of the image the server embeds (keep "
          "aspect) and of the pictures written.");
ABSL_FLAG(std::string, patch, "",
          "similarity: the patch ROW,COL (0-based, in the patch grid) compared with all others.");

namespace dinov3::client {
namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

constexpr char kUsage[] = R"(command line client of the DINOv3 embedding service.

Usage:
  dinov3-client models                list the served models: name, state, default, variant
  dinov3-client load NAME             ModelAdmin.LoadModel: serve <repository>/NAME.pt as NAME
                                      (replaces a served NAME); needs an admin key
  dinov3-client unload NAME           ModelAdmin.UnloadModel; needs an admin key
  dinov3-client info                  print a served model (GetModelInfo)
  dinov3-client health                grpc.health.v1 Check of service "" (with --model: of that
                                      model); prints the status, exits 0 only when SERVING
  dinov3-client embed IMG... [--outputs=cls,pooled,patch_tokens,registers]
      [--dtype=float32|float16|bfloat16|int8|uint8|binary] [--l2_normalize]
      [--preprocess=fixed|crop|keep_aspect]
      [--height=H --width=W --max_patches=N] [--decode=exact|fast]
      [--format=json|npy] [--out=DIR] [--layers=I,J,... | --last_layers=N] [--nolayer_norm]
                                      one Embed call with all image files (id = file name).
                                      json: one line per image on stdout with "id", "grid"
                                      [h, w] and each output as (nested) float arrays.
                                      npy: writes DIR/<file name>.<output>.npy (shape as on
                                      the wire: cls/pooled [D], patch_tokens [h*w, D],
                                      registers [R, D]) and prints the paths.
                                      --layers (0-based blocks, -1 = the last) or
                                      --last_layers: the outputs of those blocks too (final
                                      LayerNorm applied unless --nolayer_norm); json: "layers":
                                      [{"layer": i, <outputs>}, ...]; npy:
                                      DIR/<file name>.layer<i>.<output>.npy.
  dinov3-client dense IMG --out=FILE.npy [--dtype=...] [--l2_normalize]
      [--preprocess=keep_aspect] [--max_patches=N] [--rows_per_chunk=N]
      [--layers=I,J,... | --last_layers=N] [--nolayer_norm]
                                      EmbedDense; writes the [grid_h, grid_w, dim] patch grid,
                                      and each block's grid to FILE.layer<i>.npy.
  dinov3-client pca IMG... --out=DIR [--size=768]
                                      PCA of the dense features (3 components fitted jointly
                                      over all images) as RGB; writes DIR/<stem>_pca.png: the
                                      input and its PCA picture side by side.
  dinov3-client similarity IMG --patch=ROW,COL --out=FILE.png [--size=768]
                                      cosine similarity of one patch to every patch: the input
                                      (patch outlined) and a heat map (black, red, yellow, white
                                      from the lowest cosine to 1) side by side.

Common flags: --server=host:port (default localhost:50051), --timeout=SECONDS (default 30),
  --model=NAME (the served model; default: the server's default model),
  --tls_ca_file=CA.pem [--tls_cert_file=C.pem --tls_key_file=K.pem] (TLS, mutual TLS),
  --api_key_file=FILE or $DINOV3_API_KEY (sent as "authorization: Bearer <key>"; an admin
  key for load and unload).
Exit status: 0 success, 1 error ("error: <grpc code name>: <message>" on stderr), 2 usage error.)";

// The TLS and API-key flags (and $DINOV3_API_KEY) into `connection`.
absl::Status SetSecurity(ConnectionOptions& connection) {
  connection.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  connection.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  connection.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  if (connection.tls_cert_file.empty() != connection.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--tls_cert_file and --tls_key_file go together");
  }
  connection.tls = absl::GetFlag(FLAGS_tls) || !connection.tls_ca_file.empty() ||
                   !connection.tls_cert_file.empty();
  const std::string key_file = absl::GetFlag(FLAGS_api_key_file);
  if (key_file.empty()) {
    const char* key = std::getenv("DINOV3_API_KEY");
    connection.api_key = key == nullptr ? "" : key;
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<std::string>> keys = ReadSecretLines(key_file, "--api_key_file");
  if (!keys.ok()) return keys.status();
  connection.api_key = keys->front();
  return absl::OkStatus();
}

// Flags that absl's parser handles itself.
bool IsBuiltinFlag(absl::string_view name) {
  for (const char* builtin :
       {"help", "helpfull", "helpshort", "helppackage", "helpon", "helpmatch", "version",
        "only_check_args", "flagfile", "fromenv", "tryfromenv", "undefok"}) {
    if (name == builtin) return true;
  }
  return false;
}

// absl::ParseCommandLine exits with status 1 on an unknown flag or a bad value; check them
// first so that usage errors exit with 2. Returns an empty string when all flags are fine.
std::string FindFlagError(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (!absl::ConsumePrefix(&arg, "-") || arg.empty()) continue;  // positional or "-"
    absl::ConsumePrefix(&arg, "-");
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    if (IsBuiltinFlag(name)) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && eq == absl::string_view::npos) {
      absl::CommandLineFlag* negated = absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>()) continue;
    }
    if (flag == nullptr) return absl::StrCat("unknown flag --", name);
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return absl::StrCat("flag --", name, " needs a value");
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::StrCat("bad value '", value, "' for --", name, ": ", error);
    }
  }
  return "";
}

int UsageError(absl::string_view message) {
  std::cerr << "usage error: " << message << "\nRun 'dinov3-client --help' for usage.\n";
  return kExitUsage;
}

int Fail(const absl::Status& status) {
  std::cerr << "error: " << absl::StatusCodeToString(status.code()) << ": " << status.message()
            << "\n";
  return kExitError;
}

// --layers, --last_layers and --layer_norm.
absl::StatusOr<LayerSelection> LayersFromFlags() {
  LayerSelection selection;
  absl::StatusOr<std::vector<int32_t>> layers = ParseLayers(absl::GetFlag(FLAGS_layers));
  if (!layers.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--layers: ", layers.status().message()));
  }
  selection.layers = *std::move(layers);
  const int32_t last_layers = absl::GetFlag(FLAGS_last_layers);
  if (last_layers < 0) return absl::InvalidArgumentError("--last_layers must be >= 0");
  selection.last_layers = static_cast<uint32_t>(last_layers);
  if (!selection.layers.empty() && last_layers > 0) {
    return absl::InvalidArgumentError("give --layers or --last_layers, not both");
  }
  selection.layer_norm = absl::GetFlag(FLAGS_layer_norm);
  return selection;
}

// Preprocess from the flags; `default_mode` applies when --preprocess is empty.
absl::StatusOr<v1::Preprocess> PreprocessFromFlags(absl::string_view default_mode) {
  std::string mode_name = absl::GetFlag(FLAGS_preprocess);
  if (mode_name.empty()) mode_name = std::string(default_mode);
  absl::StatusOr<v1::ResizeMode> mode = ParseResizeMode(mode_name);
  if (!mode.ok()) return mode.status();
  const int32_t height = absl::GetFlag(FLAGS_height);
  const int32_t width = absl::GetFlag(FLAGS_width);
  const int32_t max_patches = absl::GetFlag(FLAGS_max_patches);
  if (height < 0 || width < 0 || max_patches < 0) {
    return absl::InvalidArgumentError("--height, --width and --max_patches must be >= 0");
  }
  v1::Preprocess preprocess;
  const std::string decode = absl::GetFlag(FLAGS_decode);
  if (decode == "exact") {
    preprocess.set_decode(v1::DECODE_EXACT);
  } else if (decode == "fast") {
    preprocess.set_decode(v1::DECODE_FAST);
  } else if (!decode.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--decode: unknown decode mode \"", decode, "\"; expected exact or fast"));
  }
  preprocess.set_mode(*mode);
  preprocess.set_height(height);
  preprocess.set_width(width);
  preprocess.set_max_patches(max_patches);
  return preprocess;
}

int RunEmbedCommand(const ConnectionOptions& connection, std::vector<std::string> images) {
  if (images.empty()) return UsageError("embed needs at least one image file");
  EmbedOptions options;
  options.images = std::move(images);
  absl::StatusOr<std::vector<v1::Output>> outputs = ParseOutputs(absl::GetFlag(FLAGS_outputs));
  if (!outputs.ok()) return UsageError(outputs.status().message());
  options.outputs = *std::move(outputs);
  absl::StatusOr<v1::DType> dtype = ParseDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return UsageError(dtype.status().message());
  options.dtype = *dtype;
  options.l2_normalize = absl::GetFlag(FLAGS_l2_normalize);
  absl::StatusOr<v1::Preprocess> preprocess = PreprocessFromFlags("fixed");
  if (!preprocess.ok()) return UsageError(preprocess.status().message());
  options.preprocess = *std::move(preprocess);
  absl::StatusOr<LayerSelection> layers = LayersFromFlags();
  if (!layers.ok()) return UsageError(layers.status().message());
  options.layers = *std::move(layers);
  const std::string format = absl::GetFlag(FLAGS_format);
  if (format == "json") {
    options.format = OutputFormat::kJson;
  } else if (format == "npy") {
    options.format = OutputFormat::kNpy;
    options.out_dir = absl::GetFlag(FLAGS_out);
    if (options.out_dir.empty()) return UsageError("embed --format=npy needs --out=DIR");
  } else {
    return UsageError(absl::StrCat("unknown --format '", format, "' (expected json or npy)"));
  }
  const absl::Status status = RunEmbed(connection, options, std::cout);
  return status.ok() ? 0 : Fail(status);
}

int RunDenseCommand(const ConnectionOptions& connection, const std::vector<std::string>& images) {
  if (images.size() != 1) return UsageError("dense takes exactly one image file");
  DenseOptions options;
  options.image = images[0];
  options.out_path = absl::GetFlag(FLAGS_out);
  if (options.out_path.empty()) return UsageError("dense needs --out=FILE.npy");
  absl::StatusOr<v1::DType> dtype = ParseDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return UsageError(dtype.status().message());
  options.dtype = *dtype;
  options.l2_normalize = absl::GetFlag(FLAGS_l2_normalize);
  absl::StatusOr<v1::Preprocess> preprocess = PreprocessFromFlags("keep_aspect");
  if (!preprocess.ok()) return UsageError(preprocess.status().message());
  options.preprocess = *std::move(preprocess);
  const int32_t rows_per_chunk = absl::GetFlag(FLAGS_rows_per_chunk);
  if (rows_per_chunk < 0) return UsageError("--rows_per_chunk must be >= 0");
  options.rows_per_chunk = rows_per_chunk;
  absl::StatusOr<LayerSelection> layers = LayersFromFlags();
  if (!layers.ok()) return UsageError(layers.status().message());
  options.layers = *std::move(layers);
  const absl::Status status = RunDense(connection, options, std::cout);
  return status.ok() ? 0 : Fail(status);
}

int RunPcaCommand(const ConnectionOptions& connection, std::vector<std::string> images) {
  if (images.empty()) return UsageError("pca needs at least one image file");
  PcaOptions options;
  options.images = std::move(images);
  options.out_dir = absl::GetFlag(FLAGS_out);
  if (options.out_dir.empty()) return UsageError("pca needs --out=DIR");
  options.size = absl::GetFlag(FLAGS_size);
  if (options.size <= 0) return UsageError("--size must be > 0");
  const absl::Status status = RunPca(connection, options, std::cout);
  return status.ok() ? 0 : Fail(status);
}

int RunSimilarityCommand(const ConnectionOptions& connection,
                         const std::vector<std::string>& images) {
  if (images.size() != 1) return UsageError("similarity takes exactly one image file");
  SimilarityOptions options;
  options.image = images[0];
  options.out_path = absl::GetFlag(FLAGS_out);
  if (options.out_path.empty()) return UsageError("similarity needs --out=FILE.png");
  absl::StatusOr<PatchIndex> patch = ParsePatchIndex(absl::GetFlag(FLAGS_patch));
  if (!patch.ok()) return UsageError(patch.status().message());
  options.patch = *patch;
  options.size = absl::GetFlag(FLAGS_size);
  if (options.size <= 0) return UsageError("--size must be > 0");
  const absl::Status status = RunSimilarity(connection, options, std::cout);
  return status.ok() ? 0 : Fail(status);
}

// --help lists the flags defined in this file (absl's default filter expects a file named
// after the program).
bool IsClientFlagFile(absl::string_view file) { return absl::StrContains(file, "client_main"); }

int Main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_helpshort_flags = IsClientFlagFile;
  usage_config.contains_help_flags = IsClientFlagFile;
  absl::SetFlagsUsageConfig(usage_config);
  if (const std::string error = FindFlagError(argc, argv); !error.empty()) {
    return UsageError(error);
  }
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() < 2) {
    return UsageError(
        "missing command (models, load, unload, info, health, embed, dense, pca or "
        "similarity)");
  }
  const std::string command = positional[1];
  const std::vector<std::string> args(positional.begin() + 2, positional.end());

  ConnectionOptions connection;
  connection.server = absl::GetFlag(FLAGS_server);
  connection.timeout_seconds = absl::GetFlag(FLAGS_timeout);
  if (!(connection.timeout_seconds > 0)) return UsageError("--timeout must be > 0");
  if (absl::Status s = SetSecurity(connection); !s.ok()) return UsageError(s.message());
  connection.model = absl::GetFlag(FLAGS_model);

  if (command == "info" || command == "health" || command == "models") {
    if (!args.empty()) return UsageError(absl::StrCat(command, " takes no arguments"));
  }
  if (command == "models") {
    const absl::Status status = RunListModels(connection, std::cout);
    return status.ok() ? 0 : Fail(status);
  }
  if (command == "load" || command == "unload") {
    if (args.size() != 1) return UsageError(absl::StrCat(command, " takes one model name"));
    const absl::Status status = command == "load" ? RunLoadModel(connection, args[0], std::cout)
                                                  : RunUnloadModel(connection, args[0], std::cout);
    return status.ok() ? 0 : Fail(status);
  }
  if (command == "info") {
    const absl::Status status = RunInfo(connection, std::cout);
    return status.ok() ? 0 : Fail(status);
  }
  if (command == "health") {
    const auto serving = RunHealth(connection, connection.model, std::cout);
    if (!serving.ok()) return Fail(serving.status());
    return *serving == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : kExitError;
  }
  if (command == "embed") return RunEmbedCommand(connection, args);
  if (command == "dense") return RunDenseCommand(connection, args);
  if (command == "pca") return RunPcaCommand(connection, args);
  if (command == "similarity") return RunSimilarityCommand(connection, args);
  return UsageError(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace
}  // namespace dinov3::client

int main(int argc, char** argv) { return dinov3::client::Main(argc, argv); }
