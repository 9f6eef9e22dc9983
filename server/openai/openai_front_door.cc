#include "server/openai/openai_front_door.h"

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "dinov3/v1/embedding.pb.h"
#include "server/openai/embeddings_request.h"
#include "server/service/request_recorder.h"
#include "server/service/served_model.h"

namespace dinov3::openai {
namespace {

using nlohmann::json;

const char* ErrorType(int status) {
  if (status == 401) return "authentication_error";
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

std::string EmbeddingsBody(const v1::EmbedResponse& response, const EmbeddingsRequest& request) {
  json data = json::array();
  int64_t tokens = 0;
  for (int i = 0; i < response.embeddings_size(); ++i) {
    const v1::Embedding& embedding = response.embeddings(i);
    tokens += int64_t{embedding.grid_height()} * embedding.grid_width();
    const std::string& bytes = request.output == EmbeddingOutput::kCls ? embedding.cls().data()
                                                                       : embedding.pooled().data();
    json vector;
    if (request.encoding_format == EncodingFormat::kBase64) {
      vector = absl::Base64Escape(bytes);  // float32, little-endian (the tensor's own bytes)
    } else {
      vector = json::array();
      const size_t count = bytes.size() / sizeof(float);
      vector.get_ref<json::array_t&>().reserve(count);
      for (size_t k = 0; k < count; ++k) {
        float value;
        std::memcpy(&value, bytes.data() + k * sizeof(float), sizeof(float));
        vector.push_back(value);
      }
    }
    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(vector)}});
  }
  return json{{"object", "list"},
              {"data", std::move(data)},
              {"model", response.model_name()},
              {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

std::shared_ptr<v1::EmbedRequest> ToEmbedRequest(EmbeddingsRequest& request,
                                                 const std::string* request_id) {
  auto embed = std::make_shared<v1::EmbedRequest>();
  for (std::string& image : request.images) {
    embed->add_images()->set_encoded(std::move(image));
  }
  request.images.clear();
  embed->add_outputs(request.output == EmbeddingOutput::kCls ? v1::CLS : v1::POOLED);
  embed->set_dtype(v1::FLOAT32);
  embed->set_l2_normalize(request.normalize);
  embed->set_model(request.model);
  if (request_id != nullptr) embed->set_request_id(*request_id);
  return embed;
}

void Fail(http::HttpRespond respond, service::RequestRecorder& recorder, const absl::Status& status,
          absl::string_view param = "") {
  recorder.Finish(status);
  std::move(respond)(
      OpenAIErrorResponse(http::HttpStatusOf(status.code()), status.message(), param));
}

void HandleEmbeddings(const OpenAIEnvironment& env, http::HttpExchange exchange) {
  const http::HttpRequest& http_request = exchange.request;
  const std::string* content_type = http_request.Header("content-type");
  const std::string* request_id = http_request.Header("x-request-id");
  auto parsed = ParseEmbeddingsRequest(
      http_request.body, {.max_json_depth = env.max_json_depth, .max_images = env.max_images});
  const std::string model_name = parsed.index() == 0 ? absl::get<0>(parsed).model : std::string();
  const int images = parsed.index() == 0 ? static_cast<int>(absl::get<0>(parsed).images.size()) : 0;
  service::RequestRecorder recorder(
      env.metrics, "OpenAIEmbeddings", env.models->Label(model_name),
      service::CallFacts{absl::InfiniteFuture(), http_request.peer, exchange.is_cancelled},
      request_id != nullptr ? *request_id : "", images);
  if (content_type == nullptr ||
      !absl::StartsWithIgnoreCase(absl::StripLeadingAsciiWhitespace(*content_type),
                                  "application/json")) {
    recorder.Finish(absl::InvalidArgumentError("content type"));
    return std::move(exchange.respond)(OpenAIErrorResponse(
        415, "the body must be JSON, sent with Content-Type: application/json"));
  }
  if (parsed.index() == 1) {
    const EmbeddingsError& error = absl::get<1>(parsed);
    return Fail(std::move(exchange.respond), recorder, absl::InvalidArgumentError(error.message),
                error.param);
  }
  if (absl::Status refused = env.refused ? env.refused() : absl::OkStatus(); !refused.ok()) {
    return Fail(std::move(exchange.respond), recorder, refused);
  }
  EmbeddingsRequest request = std::move(absl::get<0>(parsed));
  absl::StatusOr<std::shared_ptr<service::ServedModel>> model = env.models->Find(request.model);
  if (!model.ok()) return Fail(std::move(exchange.respond), recorder, model.status(), "model");
  std::shared_ptr<const v1::EmbedRequest> embed = ToEmbedRequest(request, request_id);
  service::EmbedPipeline& pipeline = (*model)->pipeline();
  absl::StatusOr<service::EmbedPipeline::Admission> admission = pipeline.Admit(*embed);
  if (!admission.ok()) {
    return Fail(std::move(exchange.respond), recorder, admission.status(), "input");
  }
  pipeline.Run(
      embed, std::move(admission->settings), absl::Now() + env.max_call, exchange.is_cancelled,
      [held = *std::move(model), memory = std::move(admission->memory),
       recorder = std::move(recorder), respond = std::move(exchange.respond),
       request = std::move(request)](absl::Status status, v1::EmbedResponse response) mutable {
        held.reset();
        if (!status.ok()) return Fail(std::move(respond), recorder, status, "input");
        http::HttpResponse answer;
        try {
          answer.body = EmbeddingsBody(response, request);
        } catch (const std::exception& e) {  // out of memory; nothing else throws there
          return Fail(std::move(respond), recorder,
                      absl::InternalError(absl::StrCat("could not write the answer: ", e.what())));
        }
        recorder.Finish(absl::OkStatus());
        std::move(respond)(std::move(answer));
        memory = {};
      });
}

void HandleModels(const OpenAIEnvironment& env, http::HttpExchange exchange) {
  json data = json::array();
  for (const service::ModelRegistry::Entry& entry : env.models->List()) {
    if (entry.state != service::ModelRegistry::State::kReady) continue;
    data.push_back(
        {{"id", entry.name}, {"object", "model"}, {"created", 0}, {"owned_by", "dinov3-server"}});
  }
  http::HttpResponse answer;
  answer.body = json{{"object", "list"}, {"data", std::move(data)}}.dump();
  std::move(exchange.respond)(std::move(answer));
}

}  // namespace

http::HttpResponse OpenAIErrorResponse(int status, absl::string_view message,
                                       absl::string_view param) {
  json code = nullptr;
  if (status == 404) code = "model_not_found";
  if (status == 401) code = "invalid_api_key";
  http::HttpResponse response;
  response.status = status;
  response.body = json{{"error",
                        {{"message", std::string(message)},
                         {"type", ErrorType(status)},
                         {"param", param.empty() ? json(nullptr) : json(std::string(param))},
                         {"code", code}}}}
                      .dump(-1, ' ', false, json::error_handler_t::replace);  // odd bytes: U+FFFD
  return response;
}

void AddOpenAIRoutes(http::HttpRouter& router, const OpenAIEnvironment& environment,
                     const std::function<http::HttpHandler(http::HttpHandler)>& guard) {
  const auto wrap = [&guard](http::HttpHandler handler) {
    return guard ? guard(std::move(handler)) : handler;
  };
  const OpenAIEnvironment* env = &environment;
  router.Add("POST", "/v1/embeddings", wrap([env](http::HttpExchange exchange) {
               HandleEmbeddings(*env, std::move(exchange));
             }));
  router.Add("GET", "/v1/models",
             wrap([env](http::HttpExchange exchange) { HandleModels(*env, std::move(exchange)); }));
}

}  // namespace dinov3::openai
