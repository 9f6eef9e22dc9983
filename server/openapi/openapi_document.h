// The OpenAPI 3.1 document of the HTTP front doors (OpenAI /v1, Open Inference Protocol /v2):
// server/openapi/openapi.json, compiled in at build time, and the route that serves it.
//
// GET /openapi.json (HEAD too, as every GET route): the document byte for byte, as
// application/json. It needs no API key (add the route outside the front doors' guard): it is
// the API's public description and holds no secret. Thread-safe.
#ifndef DINOV3_SERVER_OPENAPI_OPENAPI_DOCUMENT_H_
#define DINOV3_SERVER_OPENAPI_OPENAPI_DOCUMENT_H_

#include "absl/strings/string_view.h"
#include "server/http/http_router.h"

namespace dinov3::openapi {

inline constexpr char kOpenApiPath[] = "/openapi.json";

// The checked-in document's bytes (static storage).
absl::string_view OpenApiDocument();

// Adds GET kOpenApiPath.
void AddOpenApiRoute(http::HttpRouter& router);

}  // namespace dinov3::openapi

#endif  // DINOV3_SERVER_OPENAPI_OPENAPI_DOCUMENT_H_
