#include "server/app/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/secret_file.h"
#include "server/common/status_macros.h"
#include "server/common/usable_cpus.h"
#include "server/openapi/openapi_document.h"
#include "server/pipeline/request_footprint.h"
#include "server/webui/web_page.h"

namespace dinov3::service {
namespace {

constexpr char kDrainingMessage[] = "server is draining (shutting down); retry on another replica";
constexpr absl::Duration kDrainPoll = absl::Milliseconds(5);

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
      registry_(options.default_model.empty() && !options.models.empty()
                    ? options.models.front().name
                    : options.default_model),
      service_(metrics_.get(), &registry_, options.max_call, options.max_stream_buffered_bytes),
      kserve_service_(metrics_.get(), &registry_, options.max_call) {
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
  builder.RegisterService(&kserve_service_);
  RETURN_IF_ERROR(AddAdminService(builder));
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("could not listen on ", options_.listen));
  }
  SetServing(false);
  if (options_.http_enabled) RETURN_IF_ERROR(StartHttpFrontDoors());
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
  http::HttpServerOptions http;
  http.name = "metrics";
  http.listen = options_.metrics_listen;
  http.max_connections = 64;
  http.max_header_bytes = 8 << 10;
  http.max_body_bytes = 1 << 10;
  http.request_timeout = absl::Seconds(2);  // a scraper sends its request at once
  http.idle_timeout = absl::Seconds(2);
  http.write_timeout = absl::Seconds(5);
  auto router = std::make_shared<http::HttpRouter>([](int status, absl::string_view message) {
    http::HttpResponse response;
    response.status = status;
    response.content_type = "text/plain; charset=utf-8";
    response.body = absl::StrCat(message, status == 404 ? "; metrics are at /metrics\n" : "\n");
    return response;
  });
  router->Add("GET", "/metrics", [metrics = metrics_.get()](http::HttpExchange exchange) {
    http::HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = metrics->Scrape();
    std::move(exchange.respond)(std::move(response));
  });
  http::HttpHandler handler = [router](http::HttpExchange exchange) {
    router->Handle(std::move(exchange));
  };
  if (!basic_auth.empty()) {
    handler = http::RequireBasicAuth(basic_auth, "dinov3 metrics", std::move(handler));
  }
  ASSIGN_OR_RETURN(metrics_http_, http::HttpServer::Start(http, std::move(handler)));
  spdlog::info("metrics on http://{}/metrics (port {}; {})", options_.metrics_listen,
               metrics_http_->port(), basic_auth.empty() ? "no authentication" : "HTTP basic auth");
  return absl::OkStatus();
}

absl::Status EmbeddingServer::StartHttpFrontDoors() {
  http::HttpServerOptions http = options_.http;
  http.cert_file = options_.security.cert_file;
  http.key_file = options_.security.key_file;
  http.client_ca_file = options_.security.client_ca_file;
  http.tls_reload = options_.security.reload;
  http.max_body_bytes = options_.limits.max_receive_message_bytes;
  // While draining, the front doors refuse new work in their own error shapes (and the probes
  // still answer: /v2/health/live 200, /v2/health/ready 503).
  http.draining_body = "";
  http.body_budget = &memory_budget_;
  http_pool_ = std::make_unique<pipeline::ThreadPool>(std::max(1, usable_cpus_.count),
                                                      std::max(1, http.max_connections));
  const http::SubmitJob submit = [pool = http_pool_.get()](absl::AnyInvocable<void() &&>& job) {
    return pool->TrySubmit(job);
  };
  // The API-key check of each front door, answering in its protocol's error shape.
  using Guard = std::function<http::HttpHandler(http::HttpHandler)>;
  Guard openai_guard;
  Guard rest_guard;
  if (!options_.security.api_keys_file.empty()) {
    ASSIGN_OR_RETURN(std::vector<std::string> keys,
                     ReadApiKeys(options_.security.api_keys_file, "auth.api_keys_file"));
    const auto guard_with = [keys, metrics = metrics_.get()](http::ErrorFormat format) -> Guard {
      return [keys, metrics, format](http::HttpHandler next) {
        return http::RequireBearerKey(
            keys, format, [metrics] { metrics->RecordUnauthenticated(); }, std::move(next));
      };
    };
    openai_guard = guard_with([](int status, absl::string_view message) {
      return openai::OpenAIErrorResponse(status, message);
    });
    rest_guard = guard_with(http::JsonErrorResponse);
  }
  openai_.models = &registry_;
  openai_.metrics = metrics_.get();
  openai_.max_call = options_.max_call;
  openai_.max_json_depth = options_.max_json_depth;
  openai_.max_images = options_.limits.max_images_per_request;
  openai_.submit = submit;
  openai_.refused = [this] {
    return http_draining_.load() ? absl::UnavailableError(kDrainingMessage) : absl::OkStatus();
  };
  http_router_ = std::make_unique<http::HttpRouter>();  // {"error": ...} for unknown paths
  openai::AddOpenAIRoutes(*http_router_, openai_, openai_guard);
  rest_.models = &registry_;
  rest_.metrics = metrics_.get();
  rest_.max_call = options_.max_call;
  rest_.max_json_depth = options_.max_json_depth;
  rest_.version = DINOV3_VERSION;
  rest_.refused = openai_.refused;
  rest_.submit = submit;
  kserve::AddRestRoutes(*http_router_, rest_, rest_guard, !options_.security.exempt_health);
  openapi::AddOpenApiRoute(*http_router_);  // no API key: the API's public description
  webui::AddWebPageRoutes(*http_router_);   // GET /: static files, no API key (the page asks)
  ASSIGN_OR_RETURN(
      http_server_,
      http::HttpServer::Start(http, [router = http_router_.get()](http::HttpExchange exchange) {
        router->Handle(std::move(exchange));
      }));
  spdlog::info(
      "HTTP front doors on {}://{} (port {}): OpenAI /v1/embeddings, /v1/models; Open "
      "Inference Protocol /v2{}",
      http_server_->scheme(), http.listen, http_server_->port(),
      openai_guard ? "; API keys required" : "");
  return absl::OkStatus();
}

absl::Status EmbeddingServer::AddAdminService(grpc::ServerBuilder& builder) {
  registry::ModelLifecycleOptions lifecycle;
  lifecycle.repository = options_.model_repository;
  lifecycle.grace = options_.unload_grace;
  lifecycle.options_for = options_.options_for_load;
  lifecycle.set_serving = [this](const std::string& name, bool serving,
                                 registry::ServedModel* leaving) {
    absl::MutexLock lock(&health_mu_);  // orders this against the leaving model's reports
    if (leaving != nullptr) leaving->LeaveService();
    if (!draining_) SetModelServing(name, serving);
  };
  lifecycle.on_instance_health = [this](const std::string& name, bool healthy,
                                        const std::atomic<bool>& in_service) {
    InstanceHealthChanged(name, healthy, in_service);
  };
  lifecycle_ =
      std::make_unique<registry::ModelLifecycle>(std::move(lifecycle), &registry_, metrics_.get());
  if (options_.admin_keys_file.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<std::string> keys,
                   ReadApiKeys(options_.admin_keys_file, "admin.api_keys_file"));
  admin_service_ = std::make_unique<ModelAdminService>(std::move(keys), lifecycle_.get(),
                                                       &registry_, metrics_.get());
  builder.RegisterService(admin_service_.get());
  spdlog::info("ModelAdmin RPCs on (admin keys from {}; model repository '{}')",
               options_.admin_keys_file, options_.model_repository);
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
  if (options_.models.empty()) return absl::InvalidArgumentError("no model to serve");
  // The default of both thread counts; the engine derives its own the same way.
  spdlog::info("thread defaults: {}", usable_cpus_.derivation);
  const CpuFeatures& cpu = options_.models.front().engine.cpu;
  metrics_->SetCpuInfo(cpu.model, absl::StrJoin(cpu.features, ","));
  std::vector<std::shared_ptr<registry::ServedModel>> models;
  bool any_host_input = false;
  for (const registry::ServedModelOptions& model_options : options_.models) {
    registry_.SetLoading(model_options.name);
    SetModelServing(model_options.name, false);
  }
  for (const registry::ServedModelOptions& model_options : options_.models) {
    const std::string name = model_options.name;
    ASSIGN_OR_RETURN(
        std::unique_ptr<registry::ServedModel> model,
        registry::ServedModel::Load(model_options, metrics_.get(),
                                    [this, name](bool healthy, const auto& in_service) {
                                      InstanceHealthChanged(name, healthy, in_service);
                                    }));
    spdlog::info("model '{}': CPU {}; model.compute_dtype={} computes in {}", name, cpu.Describe(),
                 model_options.engine.compute_dtype, model->metadata().compute_dtype);
    any_host_input = any_host_input || model->engine().PreparesInputOnHost();
    models.push_back(std::move(model));
  }
  metrics_->SetDeviceMemorySource([registry = &registry_] {
    std::vector<DeviceMemory> usage;
    for (const registry::ModelRegistry::Entry& entry : registry->List()) {
      if (entry.model == nullptr) continue;
      for (DeviceMemory& d : entry.model->engine().DeviceMemoryUsage()) {
        const bool seen = std::any_of(usage.begin(), usage.end(),
                                      [&](const DeviceMemory& u) { return u.device == d.device; });
        if (!seen) usage.push_back(std::move(d));
      }
    }
    return usage;
  });
  const int threads =
      options_.preprocess_threads > 0 ? options_.preprocess_threads : usable_cpus_.count;
  RETURN_IF_ERROR(ReserveFixedTransients(threads, any_host_input, models));
  pool_ = std::make_unique<pipeline::ThreadPool>(threads, options_.preprocess_backlog);
  shared_ = {.limits = options_.limits,
             .pool = pool_.get(),
             .budget = &memory_budget_,
             .decode_budget = decode_budget_.get(),
             .metrics = metrics_.get()};
  // One request through each model's whole path (decode pool, batcher, an instance) first.
  for (const auto& model : models) RETURN_IF_ERROR(model->Start(shared_));
  if (options_.before_accepting) options_.before_accepting();
  for (auto& model : models) {
    const std::string name = model->name();
    spdlog::info("model '{}' loaded and warm on {}", name, model->engine().Describe());
    model->PublishMetrics(*metrics_);
    registry_.SetReady(name, std::move(model));
    SetModelServing(name, true);
  }
  lifecycle_->Enable(shared_, any_host_input);  // admin calls once the models above serve
  spdlog::info("{} model(s) loaded and warm in {:.2f} s; default model '{}'", models.size(),
               absl::ToDoubleSeconds(absl::Now() - start), registry_.default_name());
  return absl::OkStatus();
}

absl::Status EmbeddingServer::ReserveFixedTransients(
    int decode_threads, bool host_input,
    const std::vector<std::shared_ptr<registry::ServedModel>>& models) {
  const int64_t max_pixels = options_.limits.image.max_pixels;
  const int64_t max_resize_pixels = options_.limits.geometry.max_resize_pixels;
  const int64_t decode = pipeline::DecodeBudgetBytes(
      decode_threads, pipeline::PreprocessTransientBytes(host_input, max_pixels, max_resize_pixels),
      memory_budget_.capacity());
  // Each model holds its instances' share while it lives (given back when it is unloaded or
  // replaced); the decode budget is the server's.
  bool fits = memory_budget_.ReservePermanently(decode);
  int64_t instances = 0;
  for (const auto& model : models) {
    const int64_t model_bytes = model->InstanceTransientBytes(options_.limits);
    instances += model_bytes;
    if (!fits) continue;
    std::optional<MemoryBudget::Reservation> held = memory_budget_.TryReserveHeld(model_bytes);
    fits = held.has_value();
    if (fits) model->HoldMemory(*std::move(held));
  }
  const int64_t bytes = decode + instances;
  if (!fits || memory_budget_.request_capacity() <= 0) {
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

void EmbeddingServer::InstanceHealthChanged(const std::string& name, bool healthy,
                                            const std::atomic<bool>& in_service) {
  absl::MutexLock lock(&health_mu_);  // LeaveService happens under it too (set_serving)
  if (!in_service.load()) return;     // another export serves the name now, or none
  if (!healthy) {
    spdlog::error("model '{}': a model instance keeps failing: its health NOT_SERVING", name);
  }
  if (!draining_) SetModelServing(name, healthy);
}

void EmbeddingServer::SetModelServing(const std::string& name, bool serving) {
  grpc::HealthCheckServiceInterface* health = grpc_server_->GetHealthCheckService();
  if (health == nullptr) return;
  health->SetServingStatus(name, serving);
  if (name == registry_.default_name()) SetServing(serving);
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
  if (lifecycle_ != nullptr) lifecycle_->Stop(deadline);  // no more loads; retirements end
  if (grpc_server_ != nullptr) {
    service_.StartDraining();
    kserve_service_.StartDraining();
    http_draining_.store(true);
    if (http_server_ != nullptr) http_server_->StartDraining();
    spdlog::info("draining: waiting up to {:.1f} s for accepted calls",
                 absl::ToDoubleSeconds(options_.drain_timeout));
    // gRPC keeps taking calls (the service refuses them with UNAVAILABLE, which clients retry
    // elsewhere) until the accepted ones are answered; a call that reaches a gRPC server that is
    // shutting down may be CANCELLED instead, which clients do not retry.
    while (registry_.AnyModelHeld() && absl::Now() < deadline) absl::SleepFor(kDrainPoll);
    grpc_server_->Shutdown(absl::ToChronoTime(deadline));
  }
  if (http_server_ != nullptr) http_server_->Stop(deadline);
  http_pool_.reset();      // runs what is still queued: refused (draining), answers dropped
  admin_service_.reset();  // after the admin call in progress, if any
  for (const registry::ModelRegistry::Entry& entry : registry_.List()) {
    if (entry.model != nullptr) {
      entry.model->Shutdown(std::max(deadline - absl::Now(), absl::ZeroDuration()));
    }
  }
  for (const registry::ModelRegistry::Entry& entry : registry_.List()) {
    metrics_->RemoveModel(entry.name);  // scrapes stop reading what goes
  }
  metrics_->SetMemoryBudget(memory_budget_.capacity(), nullptr);
  metrics_->SetDeviceMemorySource(nullptr);
  pool_.reset();  // runs any decode job still queued (it gets UNAVAILABLE from the batcher)
  registry_.TakeAll().clear();
  spdlog::info("server stopped");
}

}  // namespace dinov3::service
