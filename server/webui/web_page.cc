#include "server/webui/web_page.h"

#include <string>
#include <utility>

namespace dinov3::webui {
namespace {

http::HttpHandler StaticFile(absl::string_view (*content)(), const char* content_type) {
  return [content, content_type](http::HttpExchange exchange) {
    http::HttpResponse response;
    response.content_type = content_type;
    response.body = std::string(content());
    response.headers = {{"Content-Security-Policy", kContentSecurityPolicy},
                        {"X-Content-Type-Options", "nosniff"},
                        {"Referrer-Policy", "no-referrer"},
                        {"Cache-Control", "no-cache"}};
    std::move(exchange.respond)(std::move(response));
  };
}

}  // namespace

void AddWebPageRoutes(http::HttpRouter& router) {
  router.Add("GET", kPagePath, StaticFile(internal::IndexHtml, "text/html; charset=utf-8"));
  router.Add("GET", kScriptPath, StaticFile(internal::AppJs, "text/javascript; charset=utf-8"));
  router.Add("GET", kStylePath, StaticFile(internal::StyleCss, "text/css; charset=utf-8"));
}

}  // namespace dinov3::webui
