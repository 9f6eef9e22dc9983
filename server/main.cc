// dinov3-server: flags and wiring only. Loads the configuration (built-in defaults < --config
// file < DINOV3_* environment < command-line flags; config/config.h), sets up logging, then
// serves dinov3.v1.EmbeddingService until SIGTERM or SIGINT and drains (server/app/server.h).
// Exit codes: 0 after a clean shutdown, a stop signal during start-up (nothing accepted yet)
// or --print_config, 1 when the server cannot start,
// 2 for a bad command line or configuration (the error on stderr).
// OpenCV reads its own decode limits from the environment when it is loaded, before main():
// the server sets them from the configured limits and re-executes itself once (same process
// id, same arguments) so that they apply (server/preprocess/opencv_limits.h).
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "config/config.h"
#include "server/common/cpu_features.h"
#include "server/common/logging.h"
#include "server/common/memory_limit.h"
#include "server/common/stop_signals.h"
#include "server/preprocess/opencv_limits.h"
#include "server/app/server.h"

#ifndef DINOV3_VERSION
#define DINOV3_VERSION "unknown"
#endif

extern char** environ;

ABSL_FLAG(std::string, config, "",
          "YAML config file (default: $DINOV3_CONFIG; none: built-in defaults). See "
          "config/dinov3-server.yaml");
ABSL_FLAG(bool, print_config, false,
          "Print the effective configuration as YAML and exit (model.path may be empty)");

// Every flag below overrides the config key in brackets; unset flags leave the key to the
// environment, the config file or the built-in default (--print_config shows them).
ABSL_FLAG(std::optional<std::string>, model, std::nullopt,
          "[model.path] TorchScript model exported by `python -m model.export`");
ABSL_FLAG(std::optional<std::string>, listen, std::nullopt,
          "[server.listen] gRPC address to listen on (port 0 = any)");
ABSL_FLAG(std::optional<std::vector<std::string>>, devices, std::nullopt,
          "[model.devices] devices for model instances: cpu, or cuda:0,cuda:1,...");
ABSL_FLAG(std::optional<std::string>, device, std::nullopt,
          "[model.devices] a single device (cpu, cuda or cuda:N); --devices wins");
ABSL_FLAG(std::optional<int>, instances_per_device, std::nullopt,
          "[model.instances_per_device] model instances per device, each with its own thread");
ABSL_FLAG(std::optional<int>, intra_op_threads, std::nullopt,
          "[model.intra_op_threads] CPU threads per CPU instance (0 = usable CPUs / instances)");
ABSL_FLAG(std::optional<std::string>, compute_dtype, std::nullopt,
          "[model.compute_dtype] dtype the model computes in: export, auto, float32, bfloat16, "
          "float16");
ABSL_FLAG(std::optional<int64_t>, max_receive_message_bytes, std::nullopt,
          "[server.max_receive_message_bytes] largest request message accepted");
ABSL_FLAG(std::optional<int>, max_images_per_request, std::nullopt,
          "[limits.max_images_per_request] most images in one Embed/StreamEmbed request");
ABSL_FLAG(std::optional<int64_t>, max_image_bytes, std::nullopt,
          "[limits.max_image_bytes] largest encoded or raw image, bytes");
ABSL_FLAG(std::optional<int64_t>, max_pixels, std::nullopt,
          "[limits.max_pixels] largest decoded image, width*height");
ABSL_FLAG(std::optional<int>, min_image_side, std::nullopt,
          "[limits.min_image_side] smallest accepted image width or height, pixels");
ABSL_FLAG(std::optional<int>, max_patches, std::nullopt,
          "[limits.max_patches] most patches per image after resizing");
ABSL_FLAG(std::optional<int>, max_batch_size, std::nullopt,
          "[batching.max_batch_size] most images per forward pass (1 = no batching)");
ABSL_FLAG(std::optional<double>, max_queue_delay_ms, std::nullopt,
          "[batching.max_queue_delay_ms] how long the oldest waiting image may wait for a "
          "fuller batch");
ABSL_FLAG(std::optional<std::vector<std::string>>, preferred_batch_sizes, std::nullopt,
          "[batching.preferred_batch_sizes] batch sizes to cut early batches to, e.g. 4,8");
ABSL_FLAG(std::optional<int64_t>, max_batch_pixels, std::nullopt,
          "[batching.max_batch_pixels] cap on the summed H*W of one batch (0 = none)");
ABSL_FLAG(std::optional<int>, max_queue_size, std::nullopt,
          "[batching.max_queue_size] most images waiting for the model");
ABSL_FLAG(std::optional<std::string>, decode, std::nullopt,
          "[server.decode] default image decode: exact (full size) or fast (JPEG DCT scaling)");
ABSL_FLAG(std::optional<int>, preprocess_threads, std::nullopt,
          "[server.preprocess_threads] image decode threads (0 = usable CPUs)");
ABSL_FLAG(std::optional<double>, max_connection_age_seconds, std::nullopt,
          "[server.max_connection_age_seconds] close client connections after this long so "
          "clients rebalance (0 = never)");
ABSL_FLAG(std::optional<double>, max_connection_age_grace_seconds, std::nullopt,
          "[server.max_connection_age_grace_seconds] time calls on an aged connection may "
          "still take");
ABSL_FLAG(std::optional<double>, keepalive_time_seconds, std::nullopt,
          "[server.keepalive_time_seconds] ping a connection idle this long");
ABSL_FLAG(std::optional<double>, keepalive_timeout_seconds, std::nullopt,
          "[server.keepalive_timeout_seconds] close a connection whose ping is not answered "
          "within this");
ABSL_FLAG(std::optional<double>, min_client_ping_interval_seconds, std::nullopt,
          "[server.min_client_ping_interval_seconds] how often clients may send keepalive pings");
ABSL_FLAG(std::optional<int>, max_concurrent_streams, std::nullopt,
          "[server.max_concurrent_streams] calls one connection may have open at once");
ABSL_FLAG(std::optional<int64_t>, grpc_memory_bytes, std::nullopt,
          "[server.grpc_memory_bytes] memory for gRPC's buffers (0 = a quarter of the budget)");
ABSL_FLAG(std::optional<double>, max_call_seconds, std::nullopt,
          "[server.max_call_seconds] the longest a call's work may take and an answer may "
          "stay unread");
ABSL_FLAG(std::optional<int64_t>, memory_budget_bytes, std::nullopt,
          "[limits.memory_budget_bytes] bytes accepted requests may hold (0 = from the "
          "container's memory limit)");
ABSL_FLAG(std::optional<int64_t>, max_stream_buffered_bytes, std::nullopt,
          "[limits.max_stream_buffered_bytes] bytes one StreamEmbed stream may hold");
ABSL_FLAG(std::optional<std::string>, tls_cert_file, std::nullopt,
          "[tls.cert_file] PEM server certificate chain (with --tls_key_file: TLS)");
ABSL_FLAG(std::optional<std::string>, tls_key_file, std::nullopt,
          "[tls.key_file] PEM private key of --tls_cert_file");
ABSL_FLAG(std::optional<std::string>, tls_client_ca_file, std::nullopt,
          "[tls.client_ca_file] PEM CA bundle: clients must present a certificate it signed");
ABSL_FLAG(std::optional<double>, tls_reload_seconds, std::nullopt,
          "[tls.reload_seconds] how often the TLS files are re-read (certificate rotation)");
ABSL_FLAG(std::optional<bool>, allow_plaintext, std::nullopt,
          "[tls.allow_plaintext] serve plaintext gRPC on a non-loopback --listen");
ABSL_FLAG(std::optional<std::string>, api_keys_file, std::nullopt,
          "[auth.api_keys_file] file of API keys, one per line: calls need "
          "'authorization: Bearer <key>'");
ABSL_FLAG(std::optional<std::string>, admin_api_keys_file, std::nullopt,
          "[admin.api_keys_file] file of admin keys: turns on the ModelAdmin RPCs (load, "
          "replace, unload models)");
ABSL_FLAG(std::optional<std::string>, model_repository, std::nullopt,
          "[admin.model_repository] folder that LoadModel(name) loads <name>.pt from");
ABSL_FLAG(std::optional<bool>, exempt_health, std::nullopt,
          "[auth.exempt_health] health checks need no API key");
ABSL_FLAG(std::optional<bool>, http_enabled, std::nullopt,
          "[http.enabled] serve the HTTP front doors (OpenAI, Open Inference Protocol REST)");
ABSL_FLAG(std::optional<std::string>, http_listen, std::nullopt,
          "[http.listen] HTTP address, host:port (port 0 = any free port)");
ABSL_FLAG(std::optional<std::string>, metrics_basic_auth_file, std::nullopt,
          "[metrics.basic_auth_file] file of user:password lines: /metrics needs basic auth");
ABSL_FLAG(std::optional<double>, drain_seconds, std::nullopt,
          "[server.drain_seconds] on SIGTERM, how long accepted work may take to finish");
ABSL_FLAG(std::optional<std::string>, log_level, std::nullopt,
          "[logging.level] trace, debug, info, warn, error, critical or off");
ABSL_FLAG(std::optional<std::string>, log_format, std::nullopt, "[logging.format] text or json");
ABSL_FLAG(std::optional<std::string>, access_log_level, std::nullopt,
          "[logging.access_log_level] level of the per-RPC access lines (off = none)");
ABSL_FLAG(std::optional<bool>, metrics_enabled, std::nullopt,
          "[metrics.enabled] serve Prometheus metrics on --metrics_listen");
ABSL_FLAG(std::optional<std::string>, metrics_listen, std::nullopt,
          "[metrics.listen] Prometheus /metrics address, HOST:PORT");

namespace {

using dinov3::config::ConfigSources;

template <typename T>
void AddOverride(const absl::Flag<std::optional<T>>& flag, const char* key,
                 std::vector<ConfigSources::Override>& overrides) {
  const std::optional<T> value = absl::GetFlag(flag);
  if (!value.has_value()) return;
  overrides.push_back({key, absl::UnparseFlag(*value),
                       absl::StrCat("--", absl::GetFlagReflectionHandle(flag).Name())});
}

ConfigSources SourcesFromCommandLine() {
  ConfigSources sources;
  sources.file = absl::GetFlag(FLAGS_config);
  for (char** variable = environ; *variable != nullptr; ++variable) {
    std::pair<std::string, std::string> entry = absl::StrSplit(*variable, absl::MaxSplits('=', 1));
    sources.env.push_back(std::move(entry));
  }
  auto& o = sources.overrides;
  AddOverride(FLAGS_model, "model.path", o);
  AddOverride(FLAGS_listen, "server.listen", o);
  AddOverride(FLAGS_device, "model.devices", o);  // before --devices, which wins
  AddOverride(FLAGS_devices, "model.devices", o);
  AddOverride(FLAGS_instances_per_device, "model.instances_per_device", o);
  AddOverride(FLAGS_intra_op_threads, "model.intra_op_threads", o);
  AddOverride(FLAGS_compute_dtype, "model.compute_dtype", o);
  AddOverride(FLAGS_max_receive_message_bytes, "server.max_receive_message_bytes", o);
  AddOverride(FLAGS_max_images_per_request, "limits.max_images_per_request", o);
  AddOverride(FLAGS_max_image_bytes, "limits.max_image_bytes", o);
  AddOverride(FLAGS_max_pixels, "limits.max_pixels", o);
  AddOverride(FLAGS_min_image_side, "limits.min_image_side", o);
  AddOverride(FLAGS_max_patches, "limits.max_patches", o);
  AddOverride(FLAGS_max_batch_size, "batching.max_batch_size", o);
  AddOverride(FLAGS_max_queue_delay_ms, "batching.max_queue_delay_ms", o);
  AddOverride(FLAGS_preferred_batch_sizes, "batching.preferred_batch_sizes", o);
  AddOverride(FLAGS_max_batch_pixels, "batching.max_batch_pixels", o);
  AddOverride(FLAGS_max_queue_size, "batching.max_queue_size", o);
  AddOverride(FLAGS_preprocess_threads, "server.preprocess_threads", o);
  AddOverride(FLAGS_decode, "server.decode", o);
  AddOverride(FLAGS_drain_seconds, "server.drain_seconds", o);
  AddOverride(FLAGS_max_connection_age_seconds, "server.max_connection_age_seconds", o);
  AddOverride(FLAGS_max_connection_age_grace_seconds, "server.max_connection_age_grace_seconds", o);
  AddOverride(FLAGS_keepalive_time_seconds, "server.keepalive_time_seconds", o);
  AddOverride(FLAGS_keepalive_timeout_seconds, "server.keepalive_timeout_seconds", o);
  AddOverride(FLAGS_min_client_ping_interval_seconds, "server.min_client_ping_interval_seconds", o);
  AddOverride(FLAGS_max_concurrent_streams, "server.max_concurrent_streams", o);
  AddOverride(FLAGS_grpc_memory_bytes, "server.grpc_memory_bytes", o);
  AddOverride(FLAGS_max_call_seconds, "server.max_call_seconds", o);
  AddOverride(FLAGS_memory_budget_bytes, "limits.memory_budget_bytes", o);
  AddOverride(FLAGS_max_stream_buffered_bytes, "limits.max_stream_buffered_bytes", o);
  AddOverride(FLAGS_tls_cert_file, "tls.cert_file", o);
  AddOverride(FLAGS_tls_key_file, "tls.key_file", o);
  AddOverride(FLAGS_tls_client_ca_file, "tls.client_ca_file", o);
  AddOverride(FLAGS_tls_reload_seconds, "tls.reload_seconds", o);
  AddOverride(FLAGS_allow_plaintext, "tls.allow_plaintext", o);
  AddOverride(FLAGS_api_keys_file, "auth.api_keys_file", o);
  AddOverride(FLAGS_admin_api_keys_file, "admin.api_keys_file", o);
  AddOverride(FLAGS_model_repository, "admin.model_repository", o);
  AddOverride(FLAGS_exempt_health, "auth.exempt_health", o);
  AddOverride(FLAGS_log_level, "logging.level", o);
  AddOverride(FLAGS_log_format, "logging.format", o);
  AddOverride(FLAGS_access_log_level, "logging.access_log_level", o);
  AddOverride(FLAGS_http_enabled, "http.enabled", o);
  AddOverride(FLAGS_http_listen, "http.listen", o);
  AddOverride(FLAGS_metrics_enabled, "metrics.enabled", o);
  AddOverride(FLAGS_metrics_listen, "metrics.listen", o);
  AddOverride(FLAGS_metrics_basic_auth_file, "metrics.basic_auth_file", o);
  return sources;
}

dinov3::registry::ServedModelOptions ToModelOptions(const dinov3::config::ModelConfig& m,
                                                   const dinov3::CpuFeatures& cpu) {
  dinov3::registry::ServedModelOptions model;
  model.name = m.name;
  model.path = m.model.path;
  model.engine.devices = m.model.devices;
  model.engine.instances_per_device = m.model.instances_per_device;
  model.engine.intra_op_threads = m.model.intra_op_threads;
  model.engine.compute_dtype = m.model.compute_dtype;
  model.engine.cpu = cpu;
  model.batching.max_batch_size = m.batching.max_batch_size;
  model.batching.max_queue_delay = absl::Milliseconds(m.batching.max_queue_delay_ms);
  model.batching.preferred_batch_sizes = m.batching.preferred_batch_sizes;
  model.batching.max_batch_pixels = m.batching.max_batch_pixels;
  model.batching.max_queue_size = m.batching.max_queue_size;
  return model;
}

dinov3::service::ServerOptions ToServerOptions(const dinov3::config::ServerConfig& c) {
  dinov3::service::ServerOptions o;
  o.listen = c.server.listen;
  o.security = {.cert_file = c.tls.cert_file,
                .key_file = c.tls.key_file,
                .client_ca_file = c.tls.client_ca_file,
                .reload = absl::Seconds(c.tls.reload_seconds),
                .api_keys_file = c.auth.api_keys_file,
                .exempt_health = c.auth.exempt_health};
  o.metrics_listen = c.metrics.enabled ? c.metrics.listen : "";
  o.metrics_basic_auth_file = c.metrics.basic_auth_file;
  o.http_enabled = c.http.enabled;
  o.http.listen = c.http.listen;
  o.http.max_connections = c.http.max_connections;
  o.http.max_header_bytes = c.http.max_header_bytes;
  o.http.request_timeout = absl::Seconds(c.http.request_timeout_seconds);
  o.http.idle_timeout = absl::Seconds(c.http.idle_timeout_seconds);
  o.max_json_depth = c.http.max_json_depth;
  const dinov3::CpuFeatures cpu = dinov3::ReadCpuFeatures();
  const std::vector<dinov3::config::ModelConfig> models = dinov3::config::ResolveModels(c);
  for (const dinov3::config::ModelConfig& m : models) o.models.push_back(ToModelOptions(m, cpu));
  o.default_model = dinov3::config::DefaultModel(c);
  o.admin_keys_file = c.admin.api_keys_file;
  o.model_repository = c.admin.model_repository;
  o.unload_grace = absl::Seconds(c.admin.unload_grace_seconds);
  // A model LoadModel loads has its configured settings, or else the top-level ones.
  o.options_for_load = [models, defaults = dinov3::config::ModelConfig{"", c.model, c.batching},
                        cpu](const std::string& name, const std::string& path) {
    dinov3::config::ModelConfig m = defaults;
    for (const dinov3::config::ModelConfig& configured : models) {
      if (configured.name == name) m = configured;
    }
    m.name = name;
    m.model.path = path;
    return ToModelOptions(m, cpu);
  };
  o.limits.max_receive_message_bytes = c.server.max_receive_message_bytes;
  o.limits.max_images_per_request = c.limits.max_images_per_request;
  o.limits.image.max_image_bytes = c.limits.max_image_bytes;
  o.limits.image.max_pixels = c.limits.max_pixels;
  o.limits.image.min_image_side = c.limits.min_image_side;
  o.limits.geometry.max_patches = c.limits.max_patches;
  o.limits.default_decode = c.server.decode == "fast" ? dinov3::preprocess::DecodeMode::kFast
                                                      : dinov3::preprocess::DecodeMode::kExact;
  o.preprocess_threads = c.server.preprocess_threads;
  o.drain_timeout = absl::Seconds(c.server.drain_seconds);
  o.max_connection_age = absl::Seconds(c.server.max_connection_age_seconds);
  o.max_connection_age_grace = absl::Seconds(c.server.max_connection_age_grace_seconds);
  o.keepalive_time = absl::Seconds(c.server.keepalive_time_seconds);
  o.keepalive_timeout = absl::Seconds(c.server.keepalive_timeout_seconds);
  o.min_client_ping_interval = absl::Seconds(c.server.min_client_ping_interval_seconds);
  o.max_concurrent_streams = c.server.max_concurrent_streams;
  o.max_call = absl::Seconds(c.server.max_call_seconds);
  o.max_stream_buffered_bytes = c.limits.max_stream_buffered_bytes;
  o.memory_budget_bytes = c.limits.memory_budget_bytes;  // 0 is resolved by ResolveMemory
  o.grpc_memory_bytes = c.server.grpc_memory_bytes;
  return o;
}

// Fills in the automatic memory sizes (0 in the configuration) and says where they came from.
std::string ResolveMemory(dinov3::service::ServerOptions& o) {
  std::string budget_from = "limits.memory_budget_bytes";
  if (o.memory_budget_bytes == 0) {
    dinov3::DefaultBudget budget = dinov3::DefaultMemoryBudget(dinov3::ContainerMemoryLimit());
    o.memory_budget_bytes = budget.bytes;
    budget_from = budget.derivation;
  }
  if (o.grpc_memory_bytes == 0) {
    o.grpc_memory_bytes = std::max<int64_t>(o.memory_budget_bytes / 4, int64_t{64} << 20);
  }
  return absl::StrCat("memory budget ", o.memory_budget_bytes, " bytes (", budget_from,
                      "); gRPC buffers ", o.grpc_memory_bytes, " bytes; a stream ",
                      o.max_stream_buffered_bytes, " bytes");
}

// Marks the process image started by ApplyOpenCvLimits' re-execution (not a DINOV3_ variable:
// those are configuration keys).
constexpr char kReexecutedVar[] = "OPENCV_LIMITS_SET_BY_DINOV3";

// Puts OpenCV's own decode limits in force: sets them in the environment and, when OpenCV has
// already read its defaults (always, the first time), re-executes this program once. Returns
// the outcome for the log; returns only when the limits are in force or cannot be.
absl::Status ApplyOpenCvLimits(const dinov3::preprocess::ImageLimits& limits, char** argv) {
  absl::Status status = dinov3::preprocess::ApplyOpenCvDecoderLimits(limits);
  if (!absl::IsFailedPrecondition(status) || std::getenv(kReexecutedVar) != nullptr) {
    return status;
  }
  setenv(kReexecutedVar, "1", 1);
  execv("/proc/self/exe", argv);  // returns only when it fails
  return absl::InternalError(absl::StrCat("re-executing /proc/self/exe failed: ", strerror(errno)));
}

// The kernel names a process after the file it executed: "exe" after ApplyOpenCvLimits'
// re-execution. Gives it back its program name (argv[0]'s last component) for ps, pgrep and top.
void RestoreProcessNameAfterReexecution(const char* argv0) {
  if (std::getenv(kReexecutedVar) == nullptr) return;
  const char* slash = std::strrchr(argv0, '/');
  prctl(PR_SET_NAME, slash != nullptr ? slash + 1 : argv0);  // the kernel keeps 15 bytes
}

// Exit code 2 with every line of the error on stderr.
int ConfigError(absl::string_view message) {
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    std::cerr << "dinov3-server: " << line << "\n";
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  RestoreProcessNameAfterReexecution(argv[0]);  // first: threads inherit the name
  absl::SetProgramUsageMessage(
      "Serves DINOv3 embeddings over gRPC.\n"
      "Usage: dinov3-server [--config=FILE.yaml] [--model=FILE.pt] [flags]\n"
      "Precedence: flag > DINOV3_<SECTION>_<KEY> environment variable > config file > "
      "built-in default; --print_config shows the result.");
  absl::FlagsUsageConfig usage_config;
  usage_config.version_string = [] { return std::string("dinov3-server " DINOV3_VERSION "\n"); };
  absl::SetFlagsUsageConfig(usage_config);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    return ConfigError(
        absl::StrCat("unexpected argument '", positional[1], "' (flags are --name=value)"));
  }

  const bool print_config = absl::GetFlag(FLAGS_print_config);
  std::vector<std::string> warnings;
  absl::StatusOr<dinov3::config::ServerConfig> config = dinov3::config::LoadConfig(
      SourcesFromCommandLine(), {.check_required = !print_config}, &warnings);
  if (!config.ok()) return ConfigError(config.status().message());
  if (print_config) {
    std::cout << dinov3::config::ToYaml(*config);
    return std::cout.flush() ? 0 : 1;
  }
  dinov3::service::ServerOptions options = ToServerOptions(*config);
  const std::string memory = ResolveMemory(options);
  const absl::Status opencv_limits = ApplyOpenCvLimits(options.limits.image, argv);
  if (absl::Status s =
          dinov3::logging::ConfigureLogging({.level = config->logging.level,
                                             .format = config->logging.format,
                                             .access_log_level = config->logging.access_log_level});
      !s.ok()) {
    return ConfigError(s.message());
  }
  for (const std::string& warning : warnings) spdlog::warn("{}", warning);
  if (opencv_limits.ok()) {
    spdlog::info("OpenCV's own decode limit in force: {} pixels", options.limits.image.max_pixels);
  } else {
    spdlog::warn(
        "OpenCV's own decode limits are not in force ({}); the header checks still "
        "refuse images above limits.max_pixels before decoding",
        opencv_limits.ToString());
  }
  if (config->tls.cert_file.empty() && !dinov3::config::IsLoopbackAddress(config->server.listen)) {
    spdlog::warn(
        "PLAINTEXT gRPC on the non-loopback address {} (tls.allow_plaintext): keep it "
        "behind a TLS-terminating proxy or mesh",
        config->server.listen);
  }
  spdlog::info("dinov3-server {} starting; config: {}", DINOV3_VERSION,
               dinov3::config::Summary(*config));
  spdlog::info("{}", memory);

  // From here on SIGTERM/SIGINT are handled (during the load and warm-up too: StopSignals).
  // Never destroyed: its thread may still wait for a signal while the process exits. Held by a
  // static pointer so that it stays reachable (leak checkers do not report it).
  static dinov3::StopSignals* const stop_signals_instance = new dinov3::StopSignals();
  auto& stop_signals = *stop_signals_instance;
  options.before_accepting = [&stop_signals] { stop_signals.StartAccepting(); };
  auto server = dinov3::service::EmbeddingServer::Start(options);
  if (!server.ok()) {
    spdlog::error("could not start: {}", server.status().ToString());
    return 1;
  }
  spdlog::info("SERVING dinov3.v1.EmbeddingService on port {}", (*server)->port());
  const int signal_number = stop_signals.Wait();
  spdlog::info("received signal {}, shutting down", signal_number);
  (*server)->Shutdown();
  return 0;
}
