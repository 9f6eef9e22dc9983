#include <string>
#include <utility>

#include "server/openapi/openapi_document.h"

namespace dinov3::openapi {

void AddOpenApiRoute(http::HttpRouter& router) {
  router.Add("GET", kOpenApiPath, [](http::HttpExchange exchange) {
    http::HttpResponse response;
    response.content_type = "application/json";
    response.body = std::string(OpenApiDocument());
    std::move(exchange.respond)(std::move(response));
  });
}

}  // namespace dinov3::openapi
