// ServerConfig: every option of dinov3-server, grouped in the sections of the YAML config file
// (config/dinov3-server.yaml documents them). The member initialisers ARE the built-in
// defaults. Keys, ranges and help texts live in one place, the field list in
// config/config_fields.h; adding an option is one member here plus one line there.
// A plain value type: copyable, comparable, no invariants until Validate() (config/config.h).
#ifndef DINOV3_CONFIG_SERVER_CONFIG_H_
#define DINOV3_CONFIG_SERVER_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

namespace dinov3::config {

struct ServerSection {
  std::string listen = "127.0.0.1:50051";  // loopback: plaintext needs no opt-in here
  int64_t max_receive_message_bytes = 64 << 20;
  int preprocess_threads = 0;  // 0 = the usable CPUs (affinity mask, cgroup CPU quota)
  double drain_seconds = 10.0;
  double max_connection_age_seconds = 300;  // 0 = connections live forever
  double max_connection_age_grace_seconds = 30;
  double keepalive_time_seconds = 60;            // server pings an idle connection this often
  double keepalive_timeout_seconds = 20;         // and closes it when the ping is not answered
  double min_client_ping_interval_seconds = 10;  // client keepalive pings allowed this often
  int max_concurrent_streams = 100;              // calls open at once on one connection
  int64_t grpc_memory_bytes = 0;                 // gRPC's buffers; 0 = a quarter of the budget
  double max_call_seconds = 300;                 // calls without a client deadline
  std::string decode = "exact";                  // one of kDecodeModes (config_fields.h)
  bool operator==(const ServerSection&) const = default;
};

struct TlsSection {
  std::string cert_file;         // PEM certificate chain; with key_file: TLS on
  std::string key_file;          // PEM private key
  std::string client_ca_file;    // PEM CA bundle: clients must present a certificate it signed
  double reload_seconds = 60;    // the three files are re-read this often (certificate rotation)
  bool allow_plaintext = false;  // plaintext on a non-loopback server.listen
  bool operator==(const TlsSection&) const = default;
};

struct AuthSection {
  std::string api_keys_file;  // one key per line; "" = no API keys required
  bool exempt_health = true;  // grpc.health.v1.Health needs no key (Kubernetes probes)
  bool operator==(const AuthSection&) const = default;
};

struct AdminSection {
  std::string api_keys_file;         // admin keys, one per line; "" = the ModelAdmin RPCs are off
  std::string model_repository;      // folder LoadModel(name) loads <name>.pt from
  double unload_grace_seconds = 30;  // for the accepted work of a model leaving service
  bool operator==(const AdminSection&) const = default;
};

// The HTTP front doors (OpenAI embeddings, Open Inference Protocol REST). TLS, API keys and the
// body limit (server.max_receive_message_bytes) are shared with gRPC.
struct HttpSection {
  bool enabled = true;
  std::string listen = "127.0.0.1:8080";  // loopback: plaintext needs no opt-in here
  int max_connections = 1024;
  int64_t max_header_bytes = 16 << 10;
  double request_timeout_seconds = 30;  // a whole request must arrive within this
  double idle_timeout_seconds = 60;     // a keep-alive connection without a request is closed
  int max_json_depth = 32;
  bool operator==(const HttpSection&) const = default;
};

struct ModelSection {
  std::string path;  // required unless the models list is used
  std::vector<std::string> devices = {"cpu"};
  int instances_per_device = 1;
  int intra_op_threads = 0;  // 0 = usable CPUs / CPU instances; CUDA instances 1
  std::string compute_dtype = "export";  // one of kComputeDtypes (config_fields.h)
  std::string name;                      // the name clients use for model.path; "" = its file stem
  std::string default_model;             // with a models list: the model of requests that name none
  bool operator==(const ModelSection&) const = default;
};

struct LimitsSection {
  int max_images_per_request = 64;
  int64_t max_image_bytes = 32 << 20;
  int64_t max_pixels = 40'000'000;
  int min_image_side = 8;
  int max_patches = 4096;
  int64_t memory_budget_bytes = 0;  // 0 = from the container's memory limit (memory_limit.h)
  int64_t max_stream_buffered_bytes = int64_t{256} << 20;
  bool operator==(const LimitsSection&) const = default;
};

struct BatchingSection {
  int max_batch_size = 8;
  double max_queue_delay_ms = 2.0;
  std::vector<int> preferred_batch_sizes;
  int64_t max_batch_pixels = 0;  // 0 = no cap
  int max_queue_size = 256;
  bool operator==(const BatchingSection&) const = default;
};

struct LoggingSection {
  std::string level = "info";
  std::string format = "text";
  std::string access_log_level = "info";
  bool operator==(const LoggingSection&) const = default;
};

struct MetricsSection {
  bool enabled = true;
  std::string listen = "0.0.0.0:9464";
  std::string basic_auth_file;  // "user:password" lines; "" = /metrics is open
  bool operator==(const MetricsSection&) const = default;
};

// One entry of the top-level `models` list: a served model's name and export, and the per-model
// keys (kPerModelKeys, config_fields.h) it sets in `model` and `batching`; every key it leaves
// out takes the top-level value (ResolveModels, config.h). Only the config file sets the list.
struct ModelEntry {
  std::string name;
  std::string path;
  ModelSection model;
  BatchingSection batching;
  std::vector<std::string> keys_set;  // e.g. "model.instances_per_device", in file order
  bool operator==(const ModelEntry&) const = default;
};

struct ServerConfig {
  ServerSection server;
  TlsSection tls;
  AuthSection auth;
  AdminSection admin;
  HttpSection http;
  ModelSection model;
  LimitsSection limits;
  BatchingSection batching;
  LoggingSection logging;
  MetricsSection metrics;
  std::vector<ModelEntry> models;  // empty: one model, model.path named model.name
  bool operator==(const ServerConfig&) const = default;
};

}  // namespace dinov3::config

#endif  // DINOV3_CONFIG_SERVER_CONFIG_H_
