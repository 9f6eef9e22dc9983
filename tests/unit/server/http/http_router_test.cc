// HttpRouter and the access checks of server/http/http_router.h, without sockets: exact and
// prefix routes (the longest match wins), 404, 405 with Allow, HEAD routed as GET, the router's
// ErrorFormat, RequireBearerKey (401 with WWW-Authenticate for a missing header, another scheme
// or a wrong key; the `refused` callback), RequireBasicAuth, HttpStatusOf and JsonErrorResponse,
// 415 for a compressed body, OffEventLoop.
#include "server/http/http_router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dinov3::http {
namespace {

using ::testing::HasSubstr;

// Calls `handler` with a request for `method` `path` and returns the answer it gave at once
// (nullopt if it gave none).
std::optional<HttpResponse> Call(const HttpHandler& handler, std::string method, std::string path,
                                 std::vector<std::pair<std::string, std::string>> headers = {}) {
  auto answer = std::make_shared<std::optional<HttpResponse>>();
  HttpExchange exchange;
  exchange.request.method = std::move(method);
  exchange.request.path = std::move(path);
  exchange.request.headers = std::move(headers);
  exchange.is_cancelled = [] { return false; };
  exchange.respond = [answer](HttpResponse response) { *answer = std::move(response); };
  handler(std::move(exchange));
  return *answer;
}

std::optional<HttpResponse> Call(const HttpRouter& router, std::string method, std::string path) {
  return Call([&router](HttpExchange e) { router.Handle(std::move(e)); }, std::move(method),
              std::move(path));
}

// A handler that answers 200 with `name` as the body.
HttpHandler Named(std::string name) {
  return [name = std::move(name)](HttpExchange exchange) {
    HttpResponse response;
    response.body = name;
    std::move(exchange.respond)(std::move(response));
  };
}

std::string HeaderOf(const HttpResponse& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  return "<none>";
}

TEST(HttpRouterTest, ExactRoutesMatchOnlyTheirPath) {
  HttpRouter router;
  router.Add("POST", "/v1/embeddings", Named("embeddings"));
  router.Add("GET", "/v1/models", Named("models"));
  auto reply = Call(router, "POST", "/v1/embeddings");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "embeddings");
  EXPECT_EQ(Call(router, "GET", "/v1/models")->body, "models");
  EXPECT_EQ(Call(router, "GET", "/v1/models/")->status, 404);
  EXPECT_EQ(Call(router, "GET", "/v1/model")->status, 404);
  EXPECT_EQ(Call(router, "POST", "/v1/embeddings/x")->status, 404);
}

TEST(HttpRouterTest, PrefixRoutesAndTheLongestMatchWins) {
  HttpRouter router;
  router.Add("GET", "/v2/", Named("v2"), /*prefix=*/true);
  router.Add("GET", "/v2/models/", Named("models"), /*prefix=*/true);
  router.Add("GET", "/v2/models/special", Named("special"));
  EXPECT_EQ(Call(router, "GET", "/v2/health/ready")->body, "v2");
  EXPECT_EQ(Call(router, "GET", "/v2/")->body, "v2");
  EXPECT_EQ(Call(router, "GET", "/v2/models/m/ready")->body, "models");
  EXPECT_EQ(Call(router, "GET", "/v2/models/special")->body, "special");
  EXPECT_EQ(Call(router, "GET", "/v2/models/special/x")->body, "models");
  EXPECT_EQ(Call(router, "GET", "/v2")->status, 404);
  EXPECT_EQ(Call(router, "GET", "/v3/")->status, 404);
}

TEST(HttpRouterTest, UnknownPathIs404InTheErrorFormat) {
  HttpRouter router;
  router.Add("GET", "/metrics", Named("metrics"));
  const auto reply = Call(router, "GET", "/nothing");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 404);
  EXPECT_EQ(reply->content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(reply->body),
            (nlohmann::json{{"error", "no such path: GET /nothing"}}));
}

TEST(HttpRouterTest, WrongMethodIs405WithAllow) {
  HttpRouter router;
  router.Add("GET", "/metrics", Named("get"));
  router.Add("POST", "/v1/embeddings", Named("post"));
  router.Add("PUT", "/v1/embeddings", Named("put"));
  auto reply = Call(router, "POST", "/metrics");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 405);
  EXPECT_EQ(HeaderOf(*reply, "Allow"), "GET");
  EXPECT_THAT(reply->body, HasSubstr("/metrics does not take POST; it takes GET"));
  reply = Call(router, "GET", "/v1/embeddings");
  EXPECT_EQ(reply->status, 405);
  EXPECT_EQ(HeaderOf(*reply, "Allow"), "POST, PUT");
  reply = Call(router, "HEAD", "/v1/embeddings");  // HEAD is GET, which is not taken
  EXPECT_EQ(reply->status, 405);
}

// The longest matching path decides: a shorter prefix route for the method does not take a
// path whose longest match has no route for that method, whatever the order the routes were
// added in.
TEST(HttpRouterTest, TheLongestMatchDecidesThe405WhateverTheOrderOfAdd) {
  for (const bool prefix_first : {true, false}) {
    HttpRouter router;
    if (prefix_first) router.Add("GET", "/v2/", Named("v2"), /*prefix=*/true);
    router.Add("POST", "/v2/models/m/infer", Named("infer"));
    if (!prefix_first) router.Add("GET", "/v2/", Named("v2"), /*prefix=*/true);
    const auto reply = Call(router, "GET", "/v2/models/m/infer");
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 405) << "prefix route added first: " << prefix_first;
    EXPECT_EQ(HeaderOf(*reply, "Allow"), "POST") << prefix_first;
    EXPECT_EQ(Call(router, "POST", "/v2/models/m/infer")->body, "infer");
    EXPECT_EQ(Call(router, "GET", "/v2/models/m")->body, "v2");
  }
}

TEST(HttpRouterTest, HeadIsRoutedAsGet) {
  HttpRouter router;
  router.Add("GET", "/metrics", [](HttpExchange exchange) {
    HttpResponse response;
    response.body = exchange.request.method;  // the handler still sees HEAD
    std::move(exchange.respond)(std::move(response));
  });
  const auto reply = Call(router, "HEAD", "/metrics");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, "HEAD");
}

TEST(HttpRouterTest, ACompressedBodyIs415AndNeverReachesTheHandler) {
  HttpRouter router;
  router.Add("POST", "/a", Named("a"));
  const HttpHandler handle = [&router](HttpExchange e) { router.Handle(std::move(e)); };
  const auto gzip = Call(handle, "POST", "/a", {{"content-encoding", "gzip"}});
  ASSERT_TRUE(gzip.has_value());
  EXPECT_EQ(gzip->status, 415);
  EXPECT_THAT(gzip->body, HasSubstr("Content-Encoding 'gzip' is not supported"));
  EXPECT_EQ(HeaderOf(*gzip, "Accept-Encoding"), "identity");
  EXPECT_EQ(Call(handle, "POST", "/a", {{"content-encoding", "Identity"}})->body, "a");
  EXPECT_EQ(Call(handle, "POST", "/a")->body, "a");
  // An unknown path stays 404 whatever its encoding.
  EXPECT_EQ(Call(handle, "POST", "/b", {{"content-encoding", "gzip"}})->status, 404);
}

TEST(HttpRouterTest, OffEventLoopRunsTheHandlerOnlyInTheSubmittedJob) {
  std::vector<absl::AnyInvocable<void() &&>> queued;
  const HttpHandler handler = OffEventLoop(
      [&queued](absl::AnyInvocable<void() &&>& job) {
        queued.push_back(std::move(job));
        return true;
      },
      JsonErrorResponse, Named("ran"));
  auto answer = std::make_shared<std::optional<HttpResponse>>();
  HttpExchange exchange;
  exchange.request.method = "POST";
  exchange.respond = [answer](HttpResponse response) { *answer = std::move(response); };
  handler(std::move(exchange));
  ASSERT_EQ(queued.size(), 1u);
  EXPECT_FALSE(answer->has_value());  // nothing ran on the calling thread
  std::move(queued[0])();
  ASSERT_TRUE(answer->has_value());
  EXPECT_EQ((*answer)->body, "ran");
}

TEST(HttpRouterTest, OffEventLoopAnswers503WhenTheJobIsRefused) {
  bool ran = false;
  const HttpHandler handler = OffEventLoop([](absl::AnyInvocable<void() &&>&) { return false; },
                                           [](int status, absl::string_view message) {
                                             HttpResponse response;
                                             response.status = status;
                                             response.body = absl::StrCat("custom: ", message);
                                             return response;
                                           },
                                           [&ran](HttpExchange) { ran = true; });
  const auto reply = Call(handler, "POST", "/v1/embeddings");
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 503);
  EXPECT_THAT(reply->body, HasSubstr("custom: the server cannot take this request now"));
  EXPECT_FALSE(ran);
  // Without a submit function the handler runs at once.
  EXPECT_EQ(Call(OffEventLoop({}, JsonErrorResponse, Named("inline")), "POST", "/a")->body,
            "inline");
}

TEST(HttpRouterTest, UsesItsErrorFormat) {
  HttpRouter router([](int status, absl::string_view message) {
    HttpResponse response;
    response.status = status;
    response.content_type = "text/plain";
    response.body = absl::StrCat("custom ", status, ": ", message);
    return response;
  });
  router.Add("GET", "/a", Named("a"));
  EXPECT_EQ(Call(router, "GET", "/b")->body, "custom 404: no such path: GET /b");
  const auto reply = Call(router, "DELETE", "/a");
  EXPECT_EQ(reply->status, 405);
  EXPECT_EQ(reply->content_type, "text/plain");
  EXPECT_EQ(reply->body, "custom 405: /a does not take DELETE; it takes GET");
}

TEST(HttpRouterTest, RequireBearerKeyRefusesAllButTheKeys) {
  int refused = 0;
  const HttpHandler handler = RequireBearerKey(
      {"key-one", "key-two"}, JsonErrorResponse, [&refused] { ++refused; }, Named("inside"));
  struct Case {
    std::vector<std::pair<std::string, std::string>> headers;
    std::string message;
  };
  const std::vector<Case> refusals = {
      {{}, "missing 'Authorization: Bearer <key>' header"},
      {{{"authorization", "Basic a2V5LW9uZQ=="}},
       "the Authorization header must be 'Bearer <key>'"},
      {{{"authorization", "key-one"}}, "the Authorization header must be 'Bearer <key>'"},
      {{{"authorization", "Bearer key-three"}}, "invalid API key"},
      {{{"authorization", "Bearer key-on"}}, "invalid API key"},
      {{{"authorization", "Bearer key-one "}}, "invalid API key"},
      {{{"authorization", "Bearer "}}, "invalid API key"},
  };
  for (const Case& c : refusals) {
    const auto reply = Call(handler, "POST", "/v1/embeddings", c.headers);
    ASSERT_TRUE(reply.has_value()) << c.message;
    EXPECT_EQ(reply->status, 401) << c.message;
    EXPECT_EQ(HeaderOf(*reply, "WWW-Authenticate"), "Bearer") << c.message;
    EXPECT_EQ(nlohmann::json::parse(reply->body), (nlohmann::json{{"error", c.message}}));
  }
  EXPECT_EQ(refused, static_cast<int>(refusals.size()));
  for (const char* key : {"key-one", "key-two"}) {
    const auto reply =
        Call(handler, "POST", "/v1/embeddings", {{"authorization", absl::StrCat("Bearer ", key)}});
    ASSERT_TRUE(reply.has_value()) << key;
    EXPECT_EQ(reply->status, 200) << key;
    EXPECT_EQ(reply->body, "inside") << key;
  }
  EXPECT_EQ(refused, static_cast<int>(refusals.size()));
}

TEST(HttpRouterTest, RequireBearerKeyWithoutARefusedCallback) {
  const HttpHandler handler = RequireBearerKey({"k"}, JsonErrorResponse, nullptr, Named("in"));
  EXPECT_EQ(Call(handler, "GET", "/")->status, 401);
  EXPECT_EQ(Call(handler, "GET", "/", {{"authorization", "Bearer k"}})->body, "in");
  // The scheme is case-insensitive (RFC 7235), the key is not.
  EXPECT_EQ(Call(handler, "GET", "/", {{"authorization", "bearer k"}})->body, "in");
  EXPECT_EQ(Call(handler, "GET", "/", {{"authorization", "BEARER K"}})->status, 401);
}

TEST(HttpRouterTest, RequireBasicAuthAdmitsOnlyTheConfiguredPairs) {
  const HttpHandler handler =
      RequireBasicAuth({"prom:s3cret", "other:pw"}, "dinov3 metrics", Named("metrics"));
  // base64("prom:s3cret") = cHJvbTpzM2NyZXQ=, base64("prom:s3cres") = cHJvbTpzM2NyZXM=,
  // base64("other:pw") = b3RoZXI6cHc=
  for (const auto& headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {},
           {{"authorization", "Basic cHJvbTpzM2NyZXM="}},
           {{"authorization", "Bearer cHJvbTpzM2NyZXQ="}},
           {{"authorization", "Basic cHJvbTpzM2NyZXQ"}},
           {{"x-other", "Basic cHJvbTpzM2NyZXQ="}}}) {
    const auto reply = Call(handler, "GET", "/metrics", headers);
    ASSERT_TRUE(reply.has_value());
    EXPECT_EQ(reply->status, 401);
    EXPECT_EQ(HeaderOf(*reply, "WWW-Authenticate"), "Basic realm=\"dinov3 metrics\"");
    EXPECT_EQ(reply->body, "authentication required\n");
    EXPECT_EQ(reply->content_type, "text/plain; charset=utf-8");
  }
  for (const char* good : {"Basic cHJvbTpzM2NyZXQ=", "Basic b3RoZXI6cHc="}) {
    const auto reply = Call(handler, "GET", "/metrics", {{"authorization", good}});
    ASSERT_TRUE(reply.has_value()) << good;
    EXPECT_EQ(reply->status, 200) << good;
    EXPECT_EQ(reply->body, "metrics") << good;
  }
}

TEST(HttpRouterTest, AccessChecksComposeWithTheRouter) {
  HttpRouter router;
  router.Add("GET", "/metrics", RequireBasicAuth({"u:p"}, "r", Named("metrics")));
  // base64("u:p") = dTpw
  EXPECT_EQ(Call(router, "GET", "/metrics")->status, 401);
  EXPECT_EQ(Call(router, "POST", "/metrics")->status, 405);  // the method before the check
  EXPECT_EQ(Call(router, "GET", "/other")->status, 404);
  EXPECT_EQ(Call([&router](HttpExchange e) { router.Handle(std::move(e)); }, "HEAD", "/metrics",
                 {{"authorization", "Basic dTpw"}})
                ->body,
            "metrics");
}

TEST(HttpRouterTest, HttpStatusOfMapsEveryCode) {
  using absl::StatusCode;
  const std::vector<std::pair<StatusCode, int>> expected = {
      {StatusCode::kOk, 200},
      {StatusCode::kInvalidArgument, 400},
      {StatusCode::kFailedPrecondition, 400},
      {StatusCode::kOutOfRange, 400},
      {StatusCode::kUnauthenticated, 401},
      {StatusCode::kPermissionDenied, 403},
      {StatusCode::kNotFound, 404},
      {StatusCode::kResourceExhausted, 429},
      {StatusCode::kCancelled, 499},
      {StatusCode::kUnimplemented, 501},
      {StatusCode::kUnavailable, 503},
      {StatusCode::kDeadlineExceeded, 504},
      {StatusCode::kInternal, 500},
      {StatusCode::kUnknown, 500},
      {StatusCode::kDataLoss, 500},
      {StatusCode::kAborted, 500},
      {StatusCode::kAlreadyExists, 500},
  };
  for (const auto& [code, status] : expected) {
    EXPECT_EQ(HttpStatusOf(code), status) << absl::StatusCodeToString(code);
  }
}

TEST(HttpRouterTest, JsonErrorResponseEscapesTheMessage) {
  const HttpResponse response = JsonErrorResponse(429, "queue \"full\"\n");
  EXPECT_EQ(response.status, 429);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(response.body, R"({"error":"queue \"full\"\n"})");
  EXPECT_THAT(response.headers, ::testing::IsEmpty());
}

}  // namespace
}  // namespace dinov3::http
