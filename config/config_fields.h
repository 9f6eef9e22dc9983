// The one list of configuration keys. VisitFields calls
//   visitor(key, field, constraint, help)
// for every option, in file order; YAML loading, environment variables, command-line
// overrides, validation, ToYaml, Summary and KnownKeys() are all built on it, so adding an
// option is one member in server_config.h plus one line here.
//
// key: "section.name" (the YAML path; the environment variable is DINOV3_SECTION_NAME).
// field: a reference to the member: int, int64_t, double, bool, std::string,
//   std::vector<std::string> or std::vector<int>.
// constraint: one of the types below; field_checks.h checks and describes it.
// help: one line for the config file comment and --print_config.
#ifndef DINOV3_CONFIG_CONFIG_FIELDS_H_
#define DINOV3_CONFIG_CONFIG_FIELDS_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "config/server_config.h"

namespace dinov3::config {

// Numbers in [min, max] (int and int64_t fields).
struct IntRange {
  int64_t min;
  int64_t max;
};
// Finite numbers in [min, max].
struct DoubleRange {
  double min;
  double max;
};
// Every element in [min, max], where max is the current value of the key `max_key`.
struct IntListUpTo {
  int64_t min;
  int64_t max;
  absl::string_view max_key;
};
// One of the listed strings.
struct OneOf {
  absl::Span<const absl::string_view> values;
};
// HOST:PORT with PORT 0..65535 (and, with allow_unix, unix:PATH).
struct Address {
  bool allow_unix;
};
// At least one device, each cpu, cuda or cuda:N, no duplicates.
struct DeviceList {};
// A non-empty string; the error adds `hint`.
struct Required {
  absl::string_view hint;
};
// A served model's name: 1 to 64 letters, digits, '-', '_' or '.', not "." or ".."; with
// allow_empty, also "".
struct ModelName {
  bool allow_empty;
};
// Any value of the field's type.
struct AnyValue {};

inline constexpr absl::string_view kLogLevels[] = {"trace", "debug",    "info", "warn",
                                                   "error", "critical", "off"};
inline constexpr absl::string_view kLogFormats[] = {"text", "json"};
// model.compute_dtype; server/engine/compute_dtype.h says what each value computes in.
inline constexpr absl::string_view kComputeDtypes[] = {"export", "auto", "float32", "bfloat16",
                                                       "float16"};
// server.decode; server/preprocess/resize_plan.h (DecodeMode) says what each does.
inline constexpr absl::string_view kDecodeModes[] = {"exact", "fast"};
inline constexpr int64_t kInt32Max = 2147483647;
// The keys an entry of the models list may set for its model (by their last part: an entry's
// `max_batch_size` is batching.max_batch_size); the rest are server-wide.
inline constexpr absl::string_view kPerModelKeys[] = {"model.devices",
                                                      "model.instances_per_device",
                                                      "model.intra_op_threads",
                                                      "model.compute_dtype",
                                                      "batching.max_batch_size",
                                                      "batching.max_queue_delay_ms",
                                                      "batching.preferred_batch_sizes",
                                                      "batching.max_batch_pixels",
                                                      "batching.max_queue_size"};

// Config is ServerConfig or const ServerConfig.
template <typename Config, typename Visitor>
void VisitFields(Config& c, Visitor&& v) {
  // server
  v("server.listen", c.server.listen, Address{true}, "gRPC address (port 0 = any free port)");
  v("server.max_receive_message_bytes", c.server.max_receive_message_bytes,
    IntRange{1024, kInt32Max}, "largest request message accepted, bytes");
  v("server.preprocess_threads", c.server.preprocess_threads, IntRange{0, 1024},
    "image decode threads; 0 = the usable CPUs: the affinity mask, capped by the container's "
    "cgroup CPU quota (rounded up)");
  v("server.decode", c.server.decode, OneOf{kDecodeModes},
    "default for requests that leave preprocess.decode unset: exact (full-size decode, the "
    "reference preprocessing) or fast (a JPEG at least 2x the resize target decodes at 1/2, "
    "1/4 or 1/8 scale in the DCT domain; README, Exactness)");
  v("server.drain_seconds", c.server.drain_seconds, DoubleRange{0, 3600},
    "on SIGTERM, how long accepted work may take to finish, seconds");
  v("server.max_connection_age_seconds", c.server.max_connection_age_seconds, DoubleRange{0, 86400},
    "a client connection is closed (GOAWAY) after this long, so clients reconnect and "
    "rebalance over new replicas; 0 = never");
  v("server.max_connection_age_grace_seconds", c.server.max_connection_age_grace_seconds,
    DoubleRange{0, 3600}, "how long calls on an aged connection may still take to finish");
  v("server.keepalive_time_seconds", c.server.keepalive_time_seconds, DoubleRange{1, 86400},
    "the server pings a connection idle this long, to find dead peers and keep proxies from "
    "dropping it");
  v("server.keepalive_timeout_seconds", c.server.keepalive_timeout_seconds, DoubleRange{1, 3600},
    "a connection whose ping is not answered within this is closed");
  v("server.min_client_ping_interval_seconds", c.server.min_client_ping_interval_seconds,
    DoubleRange{1, 86400},
    "clients may send keepalive pings this often, also with no call open; faster pingers get "
    "GOAWAY (too_many_pings)");
  v("server.max_concurrent_streams", c.server.max_concurrent_streams, IntRange{1, 1'000'000},
    "calls one client connection may have open at once (HTTP/2 MAX_CONCURRENT_STREAMS)");
  v("server.grpc_memory_bytes", c.server.grpc_memory_bytes, IntRange{0, int64_t{1} << 50},
    "memory gRPC may use for its connection buffers (grpc::ResourceQuota); 0 = a quarter of "
    "limits.memory_budget_bytes, at least 64 MiB");
  v("server.max_call_seconds", c.server.max_call_seconds, DoubleRange{1, 86400},
    "the longest a call's work may take (a later or missing client deadline is shortened to "
    "it: DEADLINE_EXCEEDED) and an answer may stay unread (then the call is cancelled); "
    "StreamEmbed: per request and per answer");
  // tls
  v("tls.cert_file", c.tls.cert_file, AnyValue{},
    "PEM server certificate chain; with tls.key_file, gRPC is served over TLS (\"\" = none)");
  v("tls.key_file", c.tls.key_file, AnyValue{}, "PEM private key of tls.cert_file");
  v("tls.client_ca_file", c.tls.client_ca_file, AnyValue{},
    "PEM CA bundle; set: mutual TLS, every client must present a certificate signed by it");
  v("tls.reload_seconds", c.tls.reload_seconds, DoubleRange{1, 86400},
    "how often the TLS files are re-read, so rotated certificates apply without a restart");
  v("tls.allow_plaintext", c.tls.allow_plaintext, AnyValue{},
    "serve plaintext gRPC and HTTP on a non-loopback server.listen / http.listen (behind a "
    "TLS-terminating proxy or mesh, or for development); loopback and unix: addresses never "
    "need it");
  // auth
  v("auth.api_keys_file", c.auth.api_keys_file, AnyValue{},
    "file of API keys, one per line (# comments); set: every call needs the metadata "
    "'authorization: Bearer <key>' (\"\" = no keys)");
  v("auth.exempt_health", c.auth.exempt_health, AnyValue{},
    "grpc.health.v1.Health answers without an API key (Kubernetes probes)");
  // admin
  v("admin.api_keys_file", c.admin.api_keys_file, AnyValue{},
    "file of admin keys, one per line; set: the dinov3.v1.ModelAdmin RPCs (load, replace, "
    "unload models) are served and need 'authorization: Bearer <admin key>' (\"\" = off)");
  v("admin.model_repository", c.admin.model_repository, AnyValue{},
    "folder of exports that LoadModel(name) loads, as <name>.pt (\"\" = LoadModel is refused)");
  v("admin.unload_grace_seconds", c.admin.unload_grace_seconds, DoubleRange{0, 3600},
    "how long requests an unloaded or replaced model accepted may take to finish; then they "
    "get UNAVAILABLE");
  // http
  v("http.enabled", c.http.enabled, AnyValue{},
    "serve the HTTP front doors (OpenAI /v1/embeddings, Open Inference Protocol /v2) on "
    "http.listen");
  v("http.listen", c.http.listen, Address{false},
    "HTTP address (port 0 = any free port); TLS, API keys and the body limit "
    "(server.max_receive_message_bytes) are those of gRPC");
  v("http.max_connections", c.http.max_connections, IntRange{1, 1'000'000},
    "connections open at once; at the cap a new one closes the one idle longest");
  v("http.max_header_bytes", c.http.max_header_bytes, IntRange{1024, 1 << 20},
    "largest request line and headers, bytes; beyond: 431");
  v("http.request_timeout_seconds", c.http.request_timeout_seconds, DoubleRange{0.1, 3600},
    "a request must arrive whole within this time of its first byte (slow clients are closed)");
  v("http.idle_timeout_seconds", c.http.idle_timeout_seconds, DoubleRange{0.1, 86400},
    "a keep-alive connection waiting this long for its next request is closed");
  v("http.max_json_depth", c.http.max_json_depth, IntRange{2, 1000},
    "deepest nesting of arrays and objects a JSON body may have; beyond: 400");
  // model
  v("model.path", c.model.path, Required{"export one with python -m model.export"},
    "TorchScript file written by python -m model.export (required unless models lists them)");
  v("model.name", c.model.name, ModelName{true},
    "the name clients give for model.path (EmbedRequest.model); \"\" = the file name without "
    "its extension");
  v("model.default_model", c.model.default_model, ModelName{true},
    "with a models list: the model of requests that name none (\"\" = the first entry)");
  v("model.devices", c.model.devices, DeviceList{},
    "devices for model instances, e.g. [cuda:0, cuda:1]");
  v("model.instances_per_device", c.model.instances_per_device, IntRange{1, 64},
    "model instances per device, each with its own thread");
  v("model.intra_op_threads", c.model.intra_op_threads, IntRange{0, 1024},
    "CPU threads per instance; 0 = the usable CPUs (affinity mask, cgroup CPU quota) / CPU "
    "instances, CUDA instances 1");
  v("model.compute_dtype", c.model.compute_dtype, OneOf{kComputeDtypes},
    "dtype the model computes in: export (the export's own), float32, bfloat16, float16, or "
    "auto (bfloat16 on a CPU with AMX-BF16, float16 on CUDA, else float32); "
    "clients choose the dtype of the vectors they receive separately");
  // limits
  v("limits.max_images_per_request", c.limits.max_images_per_request, IntRange{1, 4096},
    "most images in one Embed/StreamEmbed request");
  v("limits.max_image_bytes", c.limits.max_image_bytes, IntRange{1, kInt32Max},
    "largest encoded or raw image, bytes");
  v("limits.max_pixels", c.limits.max_pixels, IntRange{1, 1'000'000'000},
    "largest decoded image, width*height (checked from the header before decoding)");
  v("limits.min_image_side", c.limits.min_image_side, IntRange{1, 4096},
    "smallest accepted image width or height, pixels");
  v("limits.max_patches", c.limits.max_patches, IntRange{1, 65536},
    "most patches per image after resizing (4096 = 1024x1024 at patch 16)");
  v("limits.memory_budget_bytes", c.limits.memory_budget_bytes, IntRange{0, int64_t{1} << 50},
    "bytes accepted requests may make the server hold (request, decoded pixels, model inputs "
    "and outputs, response), reserved before any work; beyond: RESOURCE_EXHAUSTED; 0 = half "
    "the container's memory limit (cgroup), or 4 GiB without one");
  v("limits.max_stream_buffered_bytes", c.limits.max_stream_buffered_bytes,
    IntRange{1 << 20, int64_t{1} << 50},
    "bytes one StreamEmbed stream may hold in requests being computed and answers the client "
    "has not read; beyond it the stream stops reading requests until the client reads");
  // batching
  v("batching.max_batch_size", c.batching.max_batch_size, IntRange{1, 1024},
    "most images per forward pass (1 = no batching)");
  v("batching.max_queue_delay_ms", c.batching.max_queue_delay_ms, DoubleRange{0, 10'000},
    "how long the oldest waiting image may wait for a fuller batch, ms (0 = none)");
  v("batching.preferred_batch_sizes", c.batching.preferred_batch_sizes,
    IntListUpTo{1, c.batching.max_batch_size, "batching.max_batch_size"},
    "batch sizes to cut early batches to, e.g. [4, 8] ([] = none)");
  v("batching.max_batch_pixels", c.batching.max_batch_pixels, IntRange{0, int64_t{1} << 40},
    "cap on the summed output H*W of one batch (0 = no cap)");
  v("batching.max_queue_size", c.batching.max_queue_size, IntRange{1, 1'000'000},
    "most images waiting for the model; beyond: RESOURCE_EXHAUSTED");
  // logging
  v("logging.level", c.logging.level, OneOf{kLogLevels}, "server log level");
  v("logging.format", c.logging.format, OneOf{kLogFormats},
    "log line format (json: one object per line)");
  v("logging.access_log_level", c.logging.access_log_level, OneOf{kLogLevels},
    "level of the per-RPC access log lines (off = no access log)");
  // metrics
  v("metrics.enabled", c.metrics.enabled, AnyValue{}, "serve Prometheus metrics on metrics.listen");
  v("metrics.listen", c.metrics.listen, Address{false},
    "Prometheus /metrics address (port 0 = any free port)");
  v("metrics.basic_auth_file", c.metrics.basic_auth_file, AnyValue{},
    "file of 'user:password' lines; set: /metrics needs HTTP basic auth (\"\" = open)");
}

}  // namespace dinov3::config

#endif  // DINOV3_CONFIG_CONFIG_FIELDS_H_
