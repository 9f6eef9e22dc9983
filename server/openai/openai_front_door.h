// The OpenAI-compatible front door: POST /v1/embeddings and GET /v1/models on the HTTP server.
//
// POST /v1/embeddings (embeddings_request.h for the body): the images run through the same
// pipeline as a dinov3.v1 Embed call (limits, memory admission, batching with every other
// request, deadline = server.max_call_seconds, cancellation when the client hangs up, metrics
// with method="OpenAIEmbeddings", the access log). The answer has OpenAI's shape:
//   {"object": "list", "model": NAME,
//    "data": [{"object": "embedding", "index": i, "embedding": [floats] | "base64"}, ...],
//    "usage": {"prompt_tokens": P, "total_tokens": P}}
// where P counts the patch tokens the images were cut into, and "base64" is the float32 vector,
// little-endian, base64-encoded (what the openai package decodes with numpy).
// GET /v1/models: {"object": "list", "data": [{"id", "object": "model", "created": 0,
// "owned_by": "dinov3-server"}]}, the ready models.
// Errors have OpenAI's shape, {"error": {"message", "type", "param", "code"}}, with 400 (bad
// request), 401 (API key), 404 (model), 413/431 (sizes, from the server), 415 (content type),
// 429 (queue or memory full), 503 (loading, draining), 504 (deadline), 500 (internal).
// Thread-safe; `environment` must outlive the routes.
#ifndef DINOV3_SERVER_OPENAI_OPENAI_FRONT_DOOR_H_
#define DINOV3_SERVER_OPENAI_OPENAI_FRONT_DOOR_H_

#include <functional>

#include "absl/time/time.h"
#include "server/http/http_router.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/model_registry.h"

namespace dinov3::openai {

struct OpenAIEnvironment {
  const registry::ModelRegistry* models = nullptr;
  metrics::ServerMetrics* metrics = nullptr;
  absl::Duration max_call = absl::Seconds(300);  // server.max_call_seconds
  int max_json_depth = 32;
  int max_images = 64;
  // Refuses new requests while the server drains (Unavailable), OK otherwise.
  std::function<absl::Status()> refused;
  // Where POST /v1/embeddings is parsed and handled, off the HTTP event loop
  // (http::OffEventLoop); empty: on the event loop.
  http::SubmitJob submit;
};

// OpenAI's error object for `status`.
http::HttpResponse OpenAIErrorResponse(int status, absl::string_view message,
                                       absl::string_view param = "");

// Adds the routes; `guard` wraps each handler (API keys), identity when empty.
void AddOpenAIRoutes(http::HttpRouter& router, const OpenAIEnvironment& environment,
                     const std::function<http::HttpHandler(http::HttpHandler)>& guard);

}  // namespace dinov3::openai

#endif  // DINOV3_SERVER_OPENAI_OPENAI_FRONT_DOOR_H_
