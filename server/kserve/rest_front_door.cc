#include "server/kserve/rest_front_door.h"

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/memory_budget.h"
#include "server/common/status_macros.h"
#include "server/http/json_body.h"
#include "server/kserve/inference_tensors.h"
#include "server/kserve/rest_json.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/registry/served_model.h"
#include "server/service/request_recorder.h"

namespace dinov3::kserve {
namespace {

using nlohmann::json;

constexpr char kModelsPrefix[] = "/v2/models/";

http::HttpResponse JsonAnswer(int status, json body) {
  http::HttpResponse response;
  response.status = status;
  response.body = body.dump();
  return response;
}

http::HttpResponse ErrorAnswer(const absl::Status& status) {
  return http::JsonErrorResponse(http::HttpStatusOf(status.code()), status.message());
}

// {name}[/versions/{v}][/ready|/infer] after /v2/models/.
struct ModelPath {
  std::string name;
  std::string version;
  std::string action;  // "", "ready" or "infer"
};

absl::StatusOr<ModelPath> ParseModelPath(absl::string_view path) {
  path.remove_prefix(sizeof(kModelsPrefix) - 1);
  std::vector<std::string> parts = absl::StrSplit(path, '/');
  ModelPath out;
  size_t next = 1;
  if (!parts.empty()) out.name = parts[0];
  if (parts.size() >= 3 && parts[1] == "versions") {
    out.version = parts[2];
    next = 3;
  }
  if (parts.size() == next + 1 && (parts[next] == "ready" || parts[next] == "infer")) {
    out.action = parts[next];
  } else if (parts.size() != next) {
    out.name.clear();
  }
  if (out.name.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no such path: /v2/models/", path,
                     " (the model paths are /v2/models/{name}[/versions/{v}][/ready|/infer])"));
  }
  return out;
}

json MetadataJson(const ModelMetadata& metadata) {
  const auto tensors = [](const std::vector<TensorMetadata>& list) {
    json out = json::array();
    for (const TensorMetadata& t : list) {
      out.push_back({{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}});
    }
    return out;
  };
  return {{"name", metadata.name},
          {"versions", metadata.versions},
          {"platform", metadata.platform},
          {"inputs", tensors(metadata.inputs)},
          {"outputs", tensors(metadata.outputs)}};
}

// What the REST answer holds per byte of its binary parts: the tensors (freed as they are
// turned into the answer), with binary outputs a copy of their bytes and the body they are
// appended to, with JSON outputs each value's number in the tree and in the text.
pipeline::AnswerSize RestAnswerSize(const OutputPlan& plan, const RestInferRequest& encoding) {
  bool any_json = false;
  for (const OutputPlan::Entry& entry : plan.entries) {
    const auto it = encoding.binary_outputs.find(OutputName(entry.output));
    any_json |= !(it != encoding.binary_outputs.end() ? it->second : encoding.binary_default);
  }
  pipeline::AnswerSize size;
  size.per_tensor_byte = 3;
  if (any_json) {
    size.per_tensor_byte += static_cast<double>(http::kJsonNumberBytes) / DTypeSize(plan.run_dtype);
  }
  return size;
}

bool ServerReady(const RestEnvironment& env) {
  if (env.refused && !env.refused().ok()) return false;
  return env.models->StateOf(env.models->default_name()) == registry::ModelRegistry::State::kReady;
}

void Infer(const RestEnvironment& env, const ModelPath& path, http::HttpExchange exchange) {
  http::HttpRequest& http_request = exchange.request;
  service::RequestRecorder recorder(
      env.metrics, "RestModelInfer", env.models->Label(path.name),
      service::CallFacts{absl::InfiniteFuture(), http_request.peer, exchange.is_cancelled}, "", 0);
  const auto fail = [&](const absl::Status& status) {
    recorder.Finish(status);
    std::move(exchange.respond)(ErrorAnswer(status));
  };
  if (absl::Status refused = env.refused ? env.refused() : absl::OkStatus(); !refused.ok()) {
    return fail(refused);
  }
  absl::StatusOr<std::shared_ptr<registry::ServedModel>> model = env.models->Find(path.name);
  if (!model.ok()) return fail(model.status());
  if (absl::Status s = CheckModelVersion(path.name, path.version); !s.ok()) return fail(s);
  absl::StatusOr<RestInferRequest> parsed = ParseRestInferRequest(
      std::move(http_request.body), http_request.Header("inference-header-content-length"),
      env.max_json_depth);
  if (!parsed.ok()) return fail(parsed.status());
  parsed->request.model_name = path.name;
  parsed->request.model_version = path.version;
  pipeline::EmbedPipeline& model_pipeline = (*model)->pipeline();
  absl::StatusOr<MappedRequest> mapped =
      ToEmbedJob(std::move(parsed->request), model_pipeline.limits());
  if (!mapped.ok()) return fail(mapped.status());
  mapped->job.answer_size = RestAnswerSize(mapped->plan, *parsed);
  absl::StatusOr<MemoryBudget::Reservation> admitted = model_pipeline.Admit(mapped->job);
  if (!admitted.ok()) return fail(admitted.status());
  const absl::Time deadline = absl::Now() + std::min(env.max_call, mapped->timeout);
  model_pipeline.Run(
      std::move(mapped->job), deadline, exchange.is_cancelled,
      [held = *std::move(model), memory = *std::move(admitted), recorder = std::move(recorder),
       respond = std::move(exchange.respond), plan = std::move(mapped->plan),
       encoding = *std::move(parsed)](absl::Status status, pipeline::EmbedResult result) mutable {
        held.reset();
        absl::StatusOr<InferenceResponse> tensors =
            status.ok() ? ToInferenceResponse(std::move(result), plan)
                        : absl::StatusOr<InferenceResponse>(status);
        recorder.Finish(tensors.status());
        if (!tensors.ok()) return std::move(respond)(ErrorAnswer(tensors.status()));
        RestBody body;
        try {
          body = SerializeRestInferResponse(*std::move(tensors), encoding);
        } catch (const std::exception& e) {  // out of memory; nothing else throws there
          return std::move(respond)(ErrorAnswer(
              absl::InternalError(absl::StrCat("could not write the answer: ", e.what()))));
        }
        http::HttpResponse answer;
        answer.body = std::move(body.body);
        answer.content_type = std::move(body.content_type);
        if (body.header_length >= 0) {
          answer.headers.emplace_back("Inference-Header-Content-Length",
                                      std::to_string(body.header_length));
        }
        std::move(respond)(std::move(answer));
        memory = {};
      });
}

void HandleModel(const RestEnvironment& env, http::HttpExchange exchange) {
  absl::StatusOr<ModelPath> path = ParseModelPath(exchange.request.path);
  if (!path.ok()) return std::move(exchange.respond)(ErrorAnswer(path.status()));
  const bool post = exchange.request.method == "POST";
  if (post != (path->action == "infer")) {
    http::HttpResponse response = http::JsonErrorResponse(
        405, absl::StrCat(exchange.request.path, post ? " takes GET" : " takes POST"));
    response.headers.emplace_back("Allow", post ? "GET" : "POST");
    return std::move(exchange.respond)(std::move(response));
  }
  if (path->action == "infer") return Infer(env, *path, std::move(exchange));
  absl::Status version = CheckModelVersion(path->name, path->version);
  const std::optional<registry::ModelRegistry::State> state = env.models->StateOf(path->name);
  if (path->action == "ready") {
    if (!version.ok() || !state.has_value()) {
      return std::move(exchange.respond)(ErrorAnswer(
          version.ok() ? absl::NotFoundError(absl::StrCat("no model '", path->name, "'"))
                       : version));
    }
    const bool ready = *state == registry::ModelRegistry::State::kReady;
    return std::move(exchange.respond)(JsonAnswer(ready ? 200 : 503, json::object()));
  }
  absl::StatusOr<std::shared_ptr<registry::ServedModel>> model = env.models->Find(path->name);
  if (!model.ok()) return std::move(exchange.respond)(ErrorAnswer(model.status()));
  if (!version.ok()) return std::move(exchange.respond)(ErrorAnswer(version));
  std::move(exchange.respond)(
      JsonAnswer(200, MetadataJson(MakeModelMetadata((*model)->name(), (*model)->description()))));
}

}  // namespace

void AddRestRoutes(http::HttpRouter& router, const RestEnvironment& environment,
                   const std::function<http::HttpHandler(http::HttpHandler)>& guard,
                   bool guard_health) {
  const auto wrap = [&guard](http::HttpHandler handler) {
    return guard ? guard(std::move(handler)) : handler;
  };
  const RestEnvironment* env = &environment;
  http::HttpHandler live = [](http::HttpExchange exchange) {
    std::move(exchange.respond)(JsonAnswer(200, json::object()));
  };
  http::HttpHandler ready = [env](http::HttpExchange exchange) {
    std::move(exchange.respond)(JsonAnswer(ServerReady(*env) ? 200 : 503, json::object()));
  };
  router.Add("GET", "/v2/health/live", guard_health ? wrap(live) : live);
  router.Add("GET", "/v2/health/ready", guard_health ? wrap(ready) : ready);
  router.Add("GET", "/v2", wrap([env](http::HttpExchange exchange) {
               std::move(exchange.respond)(
                   JsonAnswer(200, {{"name", kServerName},
                                    {"version", env->version},
                                    {"extensions", json::array({"binary_tensor_data"})}}));
             }));
  const http::HttpHandler model = [env](http::HttpExchange exchange) {
    HandleModel(*env, std::move(exchange));
  };
  router.Add("GET", kModelsPrefix, wrap(model), /*prefix=*/true);
  router.Add("POST", kModelsPrefix,
             wrap(http::OffEventLoop(env->submit, http::JsonErrorResponse, model)),
             /*prefix=*/true);
}

}  // namespace dinov3::kserve
