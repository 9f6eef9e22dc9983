#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "server/common/secret_file.h"
#include "server/common/status_macros.h"
#include "server/common/usable_cpus.h"
#include "server/service/request_footprint.h"

namespace dinov3::service {
namespace {

// One synthetic request at the model's default size, run through the whole pipeline.
absl::Status RunWarmUpRequest(EmbedPipeline& pipeline, const model::ModelMetadata& m) {
  auto request = std::make_shared<v1::EmbedRequest>();
  v1::RawImage* raw = request->add_images()->mutable_raw();
  raw->set_width(m.default_width);
  raw->set_height(m.default_height);
  raw->set_format(v1::GRAY8);
  raw->set_data(std::string(static_cast<size_t>(m.default_width) * m.default_height, '\x80'));
  for (v1::Output o : {v1::CLS, v1::POOLED, v1::PATCH_TOKENS, v1::REGISTERS}) {
    request->add_outputs(o);
  }
  absl::StatusOr<EmbedPipeline::Admission> admission = pipeline.Admit(*request);
  if (!admission.ok()) return admission.status();
  absl::Notification finished;
  absl::Status result;
  pipeline.Run(request, std::move(admission->settings), absl::InfiniteFuture(), nullptr,
               [&](absl::Status status, v1::EmbedResponse) {
                 result = std::move(status);
                 finished.Notify();
               });
  finished.WaitForNotification();
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EmbeddingServer>> EmbeddingServer::Start(
    const ServerOptions& options) {
  std::unique_ptr<EmbeddingServer> server(new EmbeddingServer(options));
  RETURN_IF_ERROR(server->Listen());
  if (absl::Status s = server->LoadAndWarmUp(); !s.ok()) {
    server->Shutdown();
    return s;
  }
  server->SetServing(true);
  return server;
}

EmbeddingServer::EmbeddingServer(const ServerOptions& options)
    : options_(options),
      metrics_(std::make_unique<metrics::ServerMetrics>(DINOV3_VERSION)),
      memory_budget_(options.memory_budget_bytes),
      service_(metrics_.get(), options.max_call, options.max_stream_buffered_bytes) {
  metrics_->SetMemoryBudget(memory_budget_.capacity(),
                            [budget = &memory_budget_] { return budget->used(); });
}

EmbeddingServer::~EmbeddingServer() { Shutdown(); }

absl::Status EmbeddingServer::Listen() {
  if (!options_.metrics_listen.empty()) RETURN_IF_ERROR(StartMetricsEndpoint());
  ASSIGN_OR_RETURN(ServerTransport transport,
                   MakeServerTransport(options_.listen, options_.security, metrics_.get()));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, transport.credentials, &port_);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<int64_t>(options_.limits.max_receive_message_bytes, INT32_MAX)));
  grpc::ResourceQuota quota("dinov3-server");
  quota.Resize(static_cast<size_t>(options_.grpc_memory_bytes));
  builder.SetResourceQuota(quota);
  AddConnectionArguments(builder);
  builder.RegisterService(&service_);
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("could not listen on ", options_.listen));
  }
  SetServing(false);
  spdlog::info("listening on {} (port {}); health NOT_SERVING until the model is warm",
               options_.listen, port_);
  spdlog::info("gRPC transport: {}", transport.description);
  return absl::OkStatus();
}

absl::Status EmbeddingServer::StartMetricsEndpoint() {
  std::vector<std::string> basic_auth;
  if (!options_.metrics_basic_auth_file.empty()) {
    ASSIGN_OR_RETURN(basic_auth,
                     ReadSecretLines(options_.metrics_basic_auth_file, "metrics.basic_auth_file"));
    for (size_t i = 0; i < basic_auth.size(); ++i) {
      if (basic_auth[i].find(':') == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("metrics.basic_auth_file ",
                                                       options_.metrics_basic_auth_file, ": line ",
                                                       i + 1, " is not user:password"));
      }
    }
  }
  ASSIGN_OR_RETURN(metrics_endpoint_,
                   metrics::MetricsEndpoint::Start(options_.metrics_listen, *metrics_, basic_auth));
  spdlog::info("metrics on http://{}/metrics (port {}; {})", options_.metrics_listen,
               metrics_endpoint_->port(),
               basic_auth.empty() ? "no authentication" : "HTTP basic auth");
  return absl::OkStatus();
}

void EmbeddingServer::AddConnectionArguments(grpc::ServerBuilder& builder) const {
  const auto ms = [](absl::Duration d) {
    return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
  };
  if (options_.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, ms(options_.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               ms(options_.max_connection_age_grace));
  }
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(options_.keepalive_timeout));
  // Keepalive pings on idle connections, both ways: the server's own (unlimited in number
  // without data), and the clients' at the permitted interval even with no call open.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ms(options_.min_client_ping_interval));
}

absl::Status EmbeddingServer::LoadAndWarmUp() {
  const absl::Time start = absl::Now();
  RETURN_IF_ERROR(batching::ValidateBatchingOptions(options_.batching));
  engine::EngineOptions engine_options = options_.engine;
  engine_options.warmup_max_batch_size = options_.batching.max_batch_size;
  engine_options.on_batch = [metrics = metrics_.get()](const std::string& device, int images,
                                                       double seconds) {
    metrics->RecordBatch(device, images, seconds);
  };
  engine_options.on_health_change = [this](bool healthy) {
    if (!healthy) spdlog::error("a model instance keeps failing: health NOT_SERVING");
    absl::MutexLock lock(&health_mu_);
    if (!draining_) SetServing(healthy);
  };
  // The default of both thread counts; the engine derives its own the same way.
  const UsableCpus usable_cpus = DetectUsableCpus();
  spdlog::info("thread defaults: {}", usable_cpus.derivation);
  ASSIGN_OR_RETURN(engine_, engine::ModelEngine::Load(options_.model_path, engine_options));
  const model::ModelMetadata& m = engine_->metadata();
  spdlog::info("model {}: {}", options_.model_path, model::DescribeModel(m));
  spdlog::info("CPU: {}; model.compute_dtype={} computes in {}", options_.engine.cpu.Describe(),
               options_.engine.compute_dtype, m.compute_dtype);
  metrics_->SetCpuInfo(options_.engine.cpu.model, absl::StrJoin(options_.engine.cpu.features, ","));
  if (m.untrained) spdlog::warn("the model has RANDOM weights: its embeddings are meaningless");
  for (const std::string& device : engine_->DeviceNames()) {
    metrics_->SetModelInfo(m.variant, m.compute_dtype, device);
  }
  metrics_->SetDeviceMemorySource([engine = engine_.get()] { return engine->DeviceMemoryUsage(); });

  RequestLimits limits = options_.limits;
  limits.model = {.embed_dim = m.embed_dim, .num_registers = m.num_registers};
  limits.geometry.patch_size = m.patch_size;
  limits.geometry.default_height = m.default_height;
  limits.geometry.default_width = m.default_width;
  batcher_ = std::make_unique<batching::Batcher>(options_.batching, engine_->runners());
  metrics_->SetQueueDepthSource([batcher = batcher_.get()] { return batcher->queued(); });
  metrics_->SetQueueCapacity(options_.batching.max_queue_size);
  RETURN_IF_ERROR(batcher_->WaitUntilPrepared());  // every instance loaded and warm
  const int threads =
      options_.preprocess_threads > 0 ? options_.preprocess_threads : usable_cpus.count;
  RETURN_IF_ERROR(ReserveFixedTransients(threads));
  pool_ = std::make_unique<ThreadPool>(threads, options_.preprocess_backlog);
  pipeline_ = std::make_unique<EmbedPipeline>(
      limits, absl::StrCat(m.variant, "@", m.weights_sha256.substr(0, 12)), pool_.get(),
      batcher_.get(), &memory_budget_, decode_budget_.get(), metrics_.get(),
      engine_->PreparesInputOnHost()
          ? batching::PrepareInputFn([engine = engine_.get()](batching::EmbedTask& task) {
              return engine->PrepareInput(task);
            })
          : batching::PrepareInputFn());
  // One request through the whole path (decode pool, batcher, an instance) before SERVING.
  if (absl::Status s = RunWarmUpRequest(*pipeline_, m); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("warm-up request failed: ", s.message()));
  }
  if (options_.before_accepting) options_.before_accepting();
  service_.SetReady(pipeline_.get(), MakeModelInfo(m, limits, engine_->Describe(), options_.engine.cpu));
  spdlog::info("model loaded and warm in {:.2f} s on {}",
               absl::ToDoubleSeconds(absl::Now() - start), engine_->Describe());
  return absl::OkStatus();
}

absl::Status EmbeddingServer::ReserveFixedTransients(int decode_threads) {
  const int64_t max_pixels = options_.limits.image.max_pixels;
  const int64_t max_resize_pixels = options_.limits.geometry.max_resize_pixels;
  const bool host_input = engine_->PreparesInputOnHost();
  const int64_t decode = DecodeBudgetBytes(
      decode_threads, PreprocessTransientBytes(host_input, max_pixels, max_resize_pixels),
      memory_budget_.capacity());
  int64_t instances = 0;
  for (const std::string& device : options_.engine.devices) {
    instances += options_.engine.instances_per_device *
                 InstanceTransientBytes(device.rfind("cuda", 0) == 0, host_input, max_pixels,
                                        max_resize_pixels);
  }
  const int64_t bytes = decode + instances;
  if (!memory_budget_.ReservePermanently(bytes) || memory_budget_.request_capacity() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the memory budget of ", memory_budget_.capacity(),
        " bytes (limits.memory_budget_bytes) leaves no room for requests: preprocessing (",
        decode_threads, " threads) and the model instances hold up to ", bytes,
        " bytes for images of limits.max_pixels = ", max_pixels,
        "; raise the budget or lower limits.max_pixels"));
  }
  decode_budget_ = std::make_unique<MemoryBudget>(decode);
  spdlog::info(
      "memory budget {} bytes: {} held for preprocessing, {} for the model instances' "
      "input conversion, {} for requests",
      memory_budget_.capacity(), decode, instances, memory_budget_.request_capacity());
  return absl::OkStatus();
}

void EmbeddingServer::SetServing(bool serving) {
  grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(serving);  // overall ("")
  health->SetServingStatus(kServiceName, serving);
}

void EmbeddingServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  const absl::Time deadline = absl::Now() + options_.drain_timeout;
  {
    absl::MutexLock lock(&health_mu_);
    draining_ = true;
    if (grpc_server_ != nullptr) SetServing(false);
  }
  if (grpc_server_ != nullptr) {
    service_.StartDraining();
    spdlog::info("draining: waiting up to {:.1f} s for accepted calls",
                 absl::ToDoubleSeconds(options_.drain_timeout));
    grpc_server_->Shutdown(absl::ToChronoTime(deadline));
  }
  if (batcher_ != nullptr) {
    batcher_->Shutdown(std::max(deadline - absl::Now(), absl::ZeroDuration()));
    const batching::BatcherStats stats = batcher_->stats();
    spdlog::info("ran {} batches, {} images (largest batch {})", stats.batches, stats.images,
                 stats.max_batch_size_seen);
  }
  metrics_->SetQueueDepthSource(nullptr);  // scrapes stop reading what is released below
  metrics_->SetMemoryBudget(memory_budget_.capacity(), nullptr);
  metrics_->SetDeviceMemorySource(nullptr);
  pool_.reset();  // runs any decode job still queued (it gets UNAVAILABLE from the batcher)
  batcher_.reset();
  pipeline_.reset();
  engine_.reset();
  spdlog::info("server stopped");
}

}  // namespace dinov3::service
