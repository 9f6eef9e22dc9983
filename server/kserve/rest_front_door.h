// The Open Inference Protocol (KServe v2) over HTTP/REST, on the HTTP server of server/http:
//   GET  /v2/health/live                              200 while the process serves HTTP
//   GET  /v2/health/ready                             200 when the default model is ready and
//                                                     the server is not draining, else 503
//   GET  /v2                                          server metadata {name, version, extensions}
//   GET  /v2/models/{name}[/versions/{v}]             model metadata (inference_tensors.h)
//   GET  /v2/models/{name}[/versions/{v}]/ready       200 ready, 503 not ready, 404 unknown
//   POST /v2/models/{name}[/versions/{v}]/infer       inference, JSON or the binary extension
//                                                     (rest_json.h)
// Inference runs through the served model's pipeline exactly like a dinov3.v1 Embed call
// (admission, batching with every other request, priorities, the deadline: server.
// max_call_seconds or the request's `timeout` parameter in microseconds, whichever is earlier;
// cancellation when the client hangs up; metrics with method="RestModelInfer"; the access log).
// Errors: the protocol's {"error": "<message>"} with the HTTP status of the pipeline's status
// (http_router.h, HttpStatusOf). Thread-safe; `environment` must outlive the routes.
#ifndef DINOV3_SERVER_KSERVE_REST_FRONT_DOOR_H_
#define DINOV3_SERVER_KSERVE_REST_FRONT_DOOR_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/http/http_router.h"
#include "server/metrics/server_metrics.h"
#include "server/registry/model_registry.h"

namespace dinov3::kserve {

struct RestEnvironment {
  const registry::ModelRegistry* models = nullptr;
  metrics::ServerMetrics* metrics = nullptr;
  absl::Duration max_call = absl::Seconds(300);
  int max_json_depth = 32;
  std::string version;  // the server's, for GET /v2
  // Unavailable while the server drains (new requests are refused), OK otherwise.
  std::function<absl::Status()> refused;
  // Where POST requests (infer) are parsed and handled, off the HTTP event loop
  // (http::OffEventLoop); empty: on the event loop.
  http::SubmitJob submit;
};

// Adds the routes. `guard` wraps every handler but the two health probes (API keys), and those
// too when `guard_health`; identity when empty.
void AddRestRoutes(http::HttpRouter& router, const RestEnvironment& environment,
                   const std::function<http::HttpHandler(http::HttpHandler)>& guard,
                   bool guard_health);

}  // namespace dinov3::kserve

#endif  // DINOV3_SERVER_KSERVE_REST_FRONT_DOOR_H_
