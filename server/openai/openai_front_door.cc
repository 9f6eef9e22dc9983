#include "server/openai/openai_front_door.h"

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/memory_budget.h"
#include "server/common/types.h"
#include "server/http/json_body.h"
#include "server/openai/embeddings_request.h"
#include "server/pipeline/embed_pipeline.h"
#include "server/registry/served_model.h"
#include "server/service/request_recorder.h"

namespace dinov3::openai {
namespace {

using nlohmann::json;

const std::string kNoBytes;

const char* ErrorType(int status) {
  if (status == 401) return "authentication_error";
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

std::string EmbeddingsBody(const pipeline::EmbedResult& result, const EmbeddingsRequest& request) {
  json data = json::array();
  int64_t tokens = 0;
  for (size_t i = 0; i < result.embeddings.size(); ++i) {
    const EmbeddingResult& embedding = result.embeddings[i].result;
    tokens += int64_t{embedding.grid_height} * embedding.grid_width;
    const std::optional<TensorData>& tensor =
        request.output == EmbeddingOutput::kCls ? embedding.cls : embedding.pooled;
    const std::string& bytes = tensor ? tensor->data : kNoBytes;
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
              {"model", result.model_name},
              {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}}
      .dump(-1, ' ', false, json::error_handler_t::replace);
}

// What the answer holds per byte of the binary answer's tensors: the float32 vectors
// themselves, and in the body's tree and text each value as a number (float) or base64 (4
// characters per 3 bytes, twice).
pipeline::AnswerSize OpenAIAnswerSize(EncodingFormat format) {
  pipeline::AnswerSize size;
  size.per_tensor_byte = format == EncodingFormat::kBase64
                             ? 1 + 2 * 4.0 / 3
                             : 1 + static_cast<double>(http::kJsonNumberBytes) / sizeof(float);
  return size;
}

// The job of `request`, whose images it takes: the job owns them and views them (no copy).
pipeline::EmbedJob ToEmbedJob(EmbeddingsRequest& request, const std::string* request_id,
                              const pipeline::RequestLimits& limits) {
  auto images = std::make_shared<const std::vector<std::string>>(std::move(request.images));
  request.images.clear();
  pipeline::EmbedJob job;
  job.images.reserve(images->size());
  for (const std::string& image : *images) {
    job.images.push_back(pipeline::EncodedJobImage(image));
    job.received_bytes += static_cast<int64_t>(image.size());
  }
  job.owner = std::move(images);
  pipeline::EmbedSettings& settings = job.settings;
  settings.outputs.cls = request.output == EmbeddingOutput::kCls;
  settings.outputs.pooled = request.output == EmbeddingOutput::kPooled;
  settings.dtype = DType::kFloat32;
  settings.l2_normalize = request.normalize;
  settings.preprocess.decode = limits.default_decode;
  job.model_name = request.model;
  if (request_id != nullptr) job.request_id = *request_id;
  job.received_bytes += static_cast<int64_t>(job.request_id.size());
  job.answer_size = OpenAIAnswerSize(request.encoding_format);
  return job;
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
  absl::StatusOr<std::shared_ptr<registry::ServedModel>> model = env.models->Find(request.model);
  if (!model.ok()) return Fail(std::move(exchange.respond), recorder, model.status(), "model");
  pipeline::EmbedPipeline& model_pipeline = (*model)->pipeline();
  pipeline::EmbedJob job = ToEmbedJob(request, request_id, model_pipeline.limits());
  absl::StatusOr<MemoryBudget::Reservation> admitted = model_pipeline.Admit(job);
  if (!admitted.ok()) {
    return Fail(std::move(exchange.respond), recorder, admitted.status(), "input");
  }
  model_pipeline.Run(
      std::move(job), absl::Now() + env.max_call, exchange.is_cancelled,
      [held = *std::move(model), memory = *std::move(admitted), recorder = std::move(recorder),
       respond = std::move(exchange.respond),
       request = std::move(request)](absl::Status status, pipeline::EmbedResult result) mutable {
        held.reset();
        if (!status.ok()) return Fail(std::move(respond), recorder, status, "input");
        http::HttpResponse answer;
        try {
          answer.body = EmbeddingsBody(result, request);
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
  for (const registry::ModelRegistry::Entry& entry : env.models->List()) {
    if (entry.state != registry::ModelRegistry::State::kReady) continue;
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
  router.Add(
      "POST", "/v1/embeddings",
      wrap(http::OffEventLoop(
          env->submit,
          [](int status, absl::string_view message) {
            return OpenAIErrorResponse(status, message);
          },
          [env](http::HttpExchange exchange) { HandleEmbeddings(*env, std::move(exchange)); })));
  router.Add("GET", "/v1/models",
             wrap([env](http::HttpExchange exchange) { HandleModels(*env, std::move(exchange)); }));
}

}  // namespace dinov3::openai
