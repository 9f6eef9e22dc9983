// ParseEmbeddingsRequest (server/openai/embeddings_request.h): the body of an OpenAI-compatible
// POST /v1/embeddings. Images as data URLs (png, jpeg) or bare base64; http(s) URLs, other media
// types, non-base64 data URLs and invalid base64 refused naming input[i]; input as one string or
// a list, empty or above the image limit; token arrays and "dimensions" refused; unknown fields;
// encoding_format, output, normalize and model values and types; malformed JSON, a body that is
// not an object, and the JSON nesting limit (refused above it, accepted at it).
#include "server/openai/embeddings_request.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dinov3::openai {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kPng = std::string("\x89PNG\r\n\x1a\n", 8) + "png bytes";
const std::string kJpeg = std::string("\xff\xd8\xff\xe0", 4) + "jpeg bytes";
const std::string kPngUrl = "data:image/png;base64," + absl::Base64Escape(kPng);
const std::string kJpegUrl = "data:image/jpeg;base64," + absl::Base64Escape(kJpeg);

// A JSON string literal of `text` (the test texts need no escaping).
std::string Quoted(const std::string& text) { return absl::StrCat("\"", text, "\""); }

// The parsed request; fails the test (and returns the defaults) on an error.
EmbeddingsRequest Parse(const std::string& body, EmbeddingsLimits limits = {}) {
  auto result = ParseEmbeddingsRequest(body, limits);
  if (const auto* error = absl::get_if<EmbeddingsError>(&result)) {
    ADD_FAILURE() << body << " → " << error->param << ": " << error->message;
    return {};
  }
  return absl::get<EmbeddingsRequest>(std::move(result));
}

// The error; fails the test (and returns an empty error) when the body is accepted.
EmbeddingsError Refuse(const std::string& body, EmbeddingsLimits limits = {}) {
  auto result = ParseEmbeddingsRequest(body, limits);
  if (absl::holds_alternative<EmbeddingsRequest>(result)) {
    ADD_FAILURE() << body << " was accepted";
    return {0, "", ""};
  }
  EmbeddingsError error = absl::get<EmbeddingsError>(std::move(result));
  EXPECT_EQ(error.status, 400) << body;
  return error;
}

// {"input": <input>, <extra>}
std::string Body(const std::string& input, const std::string& extra = "") {
  return absl::StrCat("{\"input\": ", input, extra.empty() ? "" : ", ", extra, "}");
}

TEST(EmbeddingsRequestTest, DataUrlsAndBareBase64AreDecoded) {
  const EmbeddingsRequest request = Parse(Body(absl::StrCat(
      "[", Quoted(kPngUrl), ", ", Quoted(kJpegUrl), ", ", Quoted(absl::Base64Escape(kPng)), ", ",
      Quoted("DATA:IMAGE/WEBP;BASE64," + absl::Base64Escape("webp")), "]")));
  EXPECT_THAT(request.images, ElementsAre(kPng, kJpeg, kPng, "webp"));
  EXPECT_EQ(request.model, "");
  EXPECT_EQ(request.encoding_format, EncodingFormat::kFloat);
  EXPECT_EQ(request.output, EmbeddingOutput::kCls);
  EXPECT_TRUE(request.normalize);
}

TEST(EmbeddingsRequestTest, InputMayBeOneStringOrAList) {
  EXPECT_THAT(Parse(Body(Quoted(kPngUrl))).images, ElementsAre(kPng));
  EXPECT_THAT(Parse(Body(absl::StrCat("[", Quoted(kJpegUrl), "]"))).images, ElementsAre(kJpeg));
}

TEST(EmbeddingsRequestTest, UrlsAreNeverFetched) {
  for (const char* url : {"http://example.com/cat.png", "https://example.com/cat.jpg",
                          "HTTPS://EXAMPLE.COM/CAT.JPG"}) {
    const EmbeddingsError error =
        Refuse(Body(absl::StrCat("[", Quoted(kPngUrl), ", ", Quoted(url), "]")));
    EXPECT_EQ(error.param, "input[1]") << url;
    EXPECT_THAT(error.message, StartsWith("input[1]: URLs are not fetched")) << url;
    EXPECT_THAT(error.message, HasSubstr("data:image/jpeg;base64,")) << url;
  }
}

TEST(EmbeddingsRequestTest, BadDataUrlsAndBase64NameTheInput) {
  struct Case {
    std::string input;
    std::string message;
  };
  const Case cases[] = {
      {"data:text/plain;base64," + absl::Base64Escape("hello"),
       "input[0]: the data URL's media type is 'text/plain'; send an image"},
      {"data:;base64," + absl::Base64Escape(kPng), "input[0]: the data URL's media type is ''"},
      {"data:image/png," + absl::Base64Escape(kPng), "input[0]: a data URL must be base64"},
      {"data:image/png;base64", "input[0]: a data URL must be base64"},
      {"data:image/png;charset=x," + absl::Base64Escape(kPng),
       "input[0]: a data URL must be base64"},
      {"data:image/png;base64,@@@@", "input[0]: not valid base64"},
      {"data:image/png;base64,", "input[0]: not valid base64"},
      {"not base64 at all!", "input[0]: not valid base64"},
      {"", "input[0]: not valid base64"},
  };
  for (const Case& c : cases) {
    const EmbeddingsError error = Refuse(Body(Quoted(c.input)));
    EXPECT_EQ(error.param, "input[0]") << c.input;
    EXPECT_THAT(error.message, StartsWith(c.message)) << c.input;
  }
  // The index is that of the bad image in the list.
  const EmbeddingsError third =
      Refuse(Body(absl::StrCat("[", Quoted(kPngUrl), ", ", Quoted(kPngUrl), ", \"@@@@\"]")));
  EXPECT_EQ(third.param, "input[2]");
  EXPECT_THAT(third.message, StartsWith("input[2]: not valid base64"));
}

TEST(EmbeddingsRequestTest, InputIsRequiredNonEmptyAndWithinTheImageLimit) {
  EmbeddingsError error = Refuse("{\"model\": \"m\"}");
  EXPECT_EQ(error.param, "input");
  EXPECT_THAT(error.message, HasSubstr("input is required"));
  error = Refuse(Body("[]"));
  EXPECT_EQ(error.param, "input");
  EXPECT_THAT(error.message, HasSubstr("input is empty"));
  for (const char* input : {"42", "null", "true", "{\"image\": \"x\"}"}) {
    error = Refuse(Body(input));
    EXPECT_EQ(error.param, "input") << input;
    EXPECT_THAT(error.message, HasSubstr("input must be an image")) << input;
  }

  const EmbeddingsLimits limits{.max_json_depth = 32, .max_images = 3};
  const std::string three =
      absl::StrJoin({Quoted(kPngUrl), Quoted(kPngUrl), Quoted(kPngUrl)}, ", ");
  EXPECT_EQ(Parse(Body("[" + three + "]"), limits).images.size(), 3u);
  error = Refuse(Body("[" + three + ", " + Quoted(kPngUrl) + "]"), limits);
  EXPECT_EQ(error.param, "input");
  EXPECT_EQ(error.message, "input has 4 images; the limit is 3 (limits.max_images_per_request)");
}

TEST(EmbeddingsRequestTest, TokenArraysAreRefused) {
  EmbeddingsError error = Refuse(Body("[1, 2, 3]"));
  EXPECT_EQ(error.param, "input[0]");
  EXPECT_THAT(error.message, StartsWith("input[0] must be a string"));
  EXPECT_THAT(error.message, HasSubstr("not tokens"));
  EXPECT_THAT(error.message, HasSubstr("got number"));
  error = Refuse(Body("[[1, 2], [3]]"));
  EXPECT_EQ(error.param, "input[0]");
  EXPECT_THAT(error.message, HasSubstr("got array"));
  error = Refuse(Body(absl::StrCat("[", Quoted(kPngUrl), ", 7]")));
  EXPECT_EQ(error.param, "input[1]");
}

TEST(EmbeddingsRequestTest, DimensionsAndUnknownFieldsAreRefused) {
  EmbeddingsError error = Refuse(Body(Quoted(kPngUrl), "\"dimensions\": 256"));
  EXPECT_EQ(error.param, "dimensions");
  EXPECT_THAT(error.message, HasSubstr("dimensions is not supported"));
  error = Refuse(Body(Quoted(kPngUrl), "\"temperature\": 1"));
  EXPECT_EQ(error.param, "temperature");
  EXPECT_THAT(error.message, StartsWith("unknown field 'temperature'; known: model, input"));
  // "user" is accepted and ignored, whatever its value.
  EXPECT_THAT(Parse(Body(Quoted(kPngUrl), "\"user\": \"someone\"")).images, ElementsAre(kPng));
}

TEST(EmbeddingsRequestTest, ModelEncodingFormatOutputAndNormalize) {
  const EmbeddingsRequest request = Parse(
      Body(Quoted(kPngUrl),
           "\"model\": \"dinov3-vitb16\", \"encoding_format\": \"base64\", \"output\": \"pooled\", "
           "\"normalize\": false"));
  EXPECT_EQ(request.model, "dinov3-vitb16");
  EXPECT_EQ(request.encoding_format, EncodingFormat::kBase64);
  EXPECT_EQ(request.output, EmbeddingOutput::kPooled);
  EXPECT_FALSE(request.normalize);
  const EmbeddingsRequest defaults = Parse(Body(
      Quoted(kPngUrl),
      "\"model\": \"\", \"encoding_format\": \"float\", \"output\": \"cls\", \"normalize\": true"));
  EXPECT_EQ(defaults.model, "");
  EXPECT_EQ(defaults.encoding_format, EncodingFormat::kFloat);
  EXPECT_EQ(defaults.output, EmbeddingOutput::kCls);
  EXPECT_TRUE(defaults.normalize);
}

TEST(EmbeddingsRequestTest, BadValuesAndTypesNameTheField) {
  struct Case {
    std::string field;
    std::string value;
    std::string message;
  };
  const Case cases[] = {
      {"encoding_format", "\"int8\"", "encoding_format must be \"float\" or \"base64\""},
      {"encoding_format", "\"FLOAT\"", "encoding_format must be \"float\" or \"base64\""},
      {"encoding_format", "1", "encoding_format must be \"float\" or \"base64\""},
      {"encoding_format", "null", "encoding_format must be \"float\" or \"base64\""},
      {"output", "\"patch_tokens\"", "output must be \"cls\""},
      {"output", "true", "output must be \"cls\""},
      {"normalize", "\"true\"", "normalize must be true or false, got string"},
      {"normalize", "1", "normalize must be true or false, got number"},
      {"model", "3", "model must be a string, got number"},
      {"model", "null", "model must be a string, got null"},
  };
  for (const Case& c : cases) {
    const EmbeddingsError error =
        Refuse(Body(Quoted(kPngUrl), absl::StrCat(Quoted(c.field), ": ", c.value)));
    EXPECT_EQ(error.param, c.field) << c.field << "=" << c.value;
    EXPECT_THAT(error.message, StartsWith(c.message)) << c.field << "=" << c.value;
  }
}

TEST(EmbeddingsRequestTest, MalformedJsonIsRefused) {
  for (const char* body :
       {"", "{", "{\"input\": }", "{\"input\": \"a\"} trailing", "{'input': 1}", "\xff\xfe"}) {
    const EmbeddingsError error = Refuse(body);
    EXPECT_EQ(error.param, "") << body;
    EXPECT_THAT(error.message, StartsWith("the body is not valid JSON: ")) << body;
  }
}

TEST(EmbeddingsRequestTest, TheBodyMustBeAnObject) {
  const std::pair<const char*, const char*> cases[] = {
      {"[]", "array"}, {"\"text\"", "string"}, {"null", "null"}, {"42", "number"}};
  for (const auto& [body, type] : cases) {
    const EmbeddingsError error = Refuse(body);
    EXPECT_EQ(error.param, "") << body;
    EXPECT_EQ(error.message, absl::StrCat("the body must be a JSON object, got ", type));
  }
}

// {"input": <png>, "user": <levels - 1 nested arrays around a string>}: `levels` nested arrays
// and objects in all, the body object included.
std::string NestedBody(int levels) {
  return Body(Quoted(kPngUrl), absl::StrCat("\"user\": ", std::string(levels - 1, '['), "\"deep\"",
                                            std::string(levels - 1, ']')));
}

TEST(EmbeddingsRequestTest, JsonNestedDeeperThanTheLimitIsRefused) {
  for (const int limit : {2, 4, 32}) {
    const EmbeddingsLimits limits{.max_json_depth = limit, .max_images = 64};
    EXPECT_THAT(Parse(NestedBody(limit), limits).images, ElementsAre(kPng)) << limit;
    const EmbeddingsError error = Refuse(NestedBody(limit + 1), limits);
    EXPECT_EQ(error.param, "") << limit;
    EXPECT_EQ(error.message, absl::StrCat("the JSON body nests deeper than ", limit,
                                          " levels (http.max_json_depth)"));
  }
  // Nesting through objects counts the same; so does a deep input.
  const EmbeddingsLimits limits{.max_json_depth = 3, .max_images = 64};
  EXPECT_EQ(Parse(Body(Quoted(kPngUrl), "\"user\": {\"a\": {\"b\": 1}}"), limits).images.size(),
            1u);
  EXPECT_THAT(
      Refuse(Body(Quoted(kPngUrl), "\"user\": {\"a\": {\"b\": {\"c\": 1}}}"), limits).message,
      HasSubstr("nests deeper than 3"));
  EXPECT_THAT(Refuse(Body("[[[\"x\"]]]"), limits).message, HasSubstr("nests deeper than 3"));
  // The default limit (32) holds against a very deep body, without exhausting the stack.
  EXPECT_THAT(Refuse(Body(Quoted(kPngUrl), "\"user\": " + std::string(100000, '['))).message,
              HasSubstr("nests deeper than 32"));
}

}  // namespace
}  // namespace dinov3::openai
