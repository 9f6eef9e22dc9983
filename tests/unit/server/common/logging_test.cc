// ConfigureLogging and LogAccess: option errors, the text and JSON line formats (read back from
// stderr), escaping of client-supplied strings, and which access lines each level lets through.
#include "server/common/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace dinov3::logging {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

AccessRecord Ok() {
  return {.method = "Embed",
          .model = "small",
          .code = "OK",
          .images = 2,
          .seconds = 0.0125,
          .peer = "ipv4:127.0.0.1:5000",
          .request_id = "r1",
          .reason = "",
          .error = ""};
}

AccessRecord Rejected() {
  return {.method = "Embed",
          .model = "small",
          .code = "RESOURCE_EXHAUSTED",
          .images = 1,
          .seconds = 0.001,
          .peer = "ipv4:127.0.0.1:5001",
          .request_id = "r2",
          .reason = "queue_full",
          .error = "queue full: 256 images waiting"};
}

// Runs `log` with stderr captured and returns what was written.
template <typename F>
std::string Captured(F log) {
  testing::internal::CaptureStderr();
  log();
  spdlog::default_logger()->flush();
  return testing::internal::GetCapturedStderr();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(LoggingTest, BadOptionsNameTheFieldAndTheChoices) {
  absl::Status s = ConfigureLogging({.level = "verbose"});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("logging.level must be one of trace, debug, info"));
  EXPECT_THAT(s.message(), HasSubstr("'verbose'"));
  s = ConfigureLogging({.format = "xml"});
  EXPECT_THAT(s.message(), HasSubstr("logging.format must be one of text, json; got 'xml'"));
  s = ConfigureLogging({.access_log_level = "loud"});
  EXPECT_THAT(s.message(), HasSubstr("logging.access_log_level"));
}

TEST(LoggingTest, EveryDocumentedLevelIsAccepted) {
  for (const char* level : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    EXPECT_TRUE(ConfigureLogging({.level = level, .access_log_level = level}).ok()) << level;
  }
  ASSERT_TRUE(ConfigureLogging({.level = "warn"}).ok());
  const std::string out = Captured([] {
    spdlog::info("hidden");
    spdlog::warn("shown");
  });
  EXPECT_THAT(out, Not(HasSubstr("hidden")));
  EXPECT_THAT(out, HasSubstr("[warning] shown"));
  EXPECT_FALSE(ConfigureLogging({.level = "warning"}).ok());  // spdlog's spelling is not ours
}

TEST(LoggingTest, CutsNeverSplitAUtf8Character) {
  ASSERT_TRUE(ConfigureLogging({.format = "json"}).ok());
  AccessRecord record = Ok();
  std::string id(127, 'x');
  id += "\xc3\xa9tail";  // a two-byte character across the 128-byte cut
  record.request_id = id;
  const std::string out = Captured([&] { LogAccess(record); });
  const auto line = nlohmann::json::parse(out);  // throws on invalid UTF-8
  EXPECT_EQ(line["request_id"], std::string(127, 'x'));
}

TEST(LoggingTest, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  ASSERT_TRUE(ConfigureLogging({.format = "json"}).ok());
  AccessRecord record = Ok();
  // A stray continuation byte, a truncated sequence, an overlong '/', a surrogate, a byte that
  // never starts UTF-8; and good two- and four-byte characters, which stay.
  record.request_id =
      "a\x80"
      "b\xc3(c\xc0\xaf"
      "d\xed\xa0\x80"
      "e\xff\xc3\xa9\xf0\x9f\x98\x80";
  record.error = "no model '\xfe\xfe'";
  const std::string out = Captured([&] { LogAccess(record); });
  const auto line = nlohmann::json::parse(out);  // throws on invalid UTF-8
  const std::string bad = "\xef\xbf\xbd";        // U+FFFD
  EXPECT_EQ(line["request_id"], "a" + bad + "b" + bad + "(c" + bad + bad + "d" + bad + bad + bad +
                                    "e" + bad + "\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(line["error"], "no model '" + bad + bad + "'");
}

TEST(LoggingTest, TextAccessLinesQuoteAndEscapeClientStrings) {
  ASSERT_TRUE(ConfigureLogging({}).ok());
  AccessRecord record = Ok();
  record.request_id = "evil\n2026-01-01 [error] forged";
  const std::string out = Captured([&] { LogAccess(record); });
  ASSERT_EQ(Lines(out).size(), 1u) << out;  // the newline did not start a forged line
  EXPECT_THAT(out, HasSubstr("[info] [access] rpc method=\"Embed\" model=\"small\" "
                             "code=\"OK\" images=2 "
                             "seconds=0.012500 peer=\"ipv4:127.0.0.1:5000\" "
                             "request_id=\"evil\\n2026-01-01 [error] forged\""));
}

TEST(LoggingTest, JsonLinesCarryTheFieldsAsKeys) {
  ASSERT_TRUE(ConfigureLogging({.format = "json"}).ok());
  const std::string out = Captured([] {
    spdlog::info("model \"x\" loaded\tok");
    LogAccess(Ok());
    LogAccess(Rejected());
  });
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 3u) << out;
  const auto server = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(server["logger"], "server");
  EXPECT_EQ(server["level"], "info");
  EXPECT_EQ(server["msg"], "model \"x\" loaded\tok");
  EXPECT_THAT(server["time"].get<std::string>(),
              testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z"));
  const auto ok = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(ok["logger"], "access");
  EXPECT_EQ(ok["msg"], "rpc");
  EXPECT_EQ(ok["images"], 2);
  EXPECT_EQ(ok["model"], "small");
  EXPECT_DOUBLE_EQ(ok["seconds"].get<double>(), 0.0125);
  EXPECT_EQ(ok["request_id"], "r1");
  EXPECT_FALSE(ok.contains("reason"));
  const auto rejected = nlohmann::json::parse(lines[2]);
  EXPECT_EQ(rejected["level"], "warning");
  EXPECT_EQ(rejected["reason"], "queue_full");
  EXPECT_EQ(rejected["error"], "queue full: 256 images waiting");
}

TEST(LoggingTest, AccessLevelFiltersOkLinesButNotRejections) {
  ASSERT_TRUE(ConfigureLogging({.access_log_level = "off"}).ok());
  std::string out = Captured([] {
    LogAccess(Ok());
    LogAccess(Rejected());
  });
  ASSERT_EQ(Lines(out).size(), 1u) << out;
  EXPECT_THAT(out, HasSubstr("[warning] [access] rpc"));
  EXPECT_THAT(out, HasSubstr("reason=\"queue_full\""));

  ASSERT_TRUE(ConfigureLogging({.level = "info", .access_log_level = "debug"}).ok());
  out = Captured([] { LogAccess(Ok()); });
  EXPECT_EQ(out, "");  // debug lines below the info threshold
  ASSERT_TRUE(ConfigureLogging({.level = "error"}).ok());
  out = Captured([] { LogAccess(Rejected()); });
  EXPECT_EQ(out, "");  // warnings below the error threshold
  ASSERT_TRUE(ConfigureLogging({.level = "debug", .access_log_level = "debug"}).ok());
  out = Captured([] { LogAccess(Ok()); });
  EXPECT_THAT(out, HasSubstr("[debug] [access] rpc"));
  ASSERT_TRUE(ConfigureLogging({}).ok());
  out = Captured([] {
    AccessRecord cancelled = Ok();
    cancelled.code = "CANCELLED";
    LogAccess(cancelled);
  });
  EXPECT_THAT(out, HasSubstr("[info] [access]"));  // the client's choice, not a warning
}

TEST(LoggingTest, LongClientStringsAreCut) {
  ASSERT_TRUE(ConfigureLogging({}).ok());
  AccessRecord record = Ok();
  const std::string long_id(10000, 'x');
  record.request_id = long_id;
  const std::string out = Captured([&] { LogAccess(record); });
  EXPECT_THAT(out, HasSubstr("request_id=\"" + std::string(128, 'x') + "\""));
  EXPECT_THAT(out, Not(HasSubstr(std::string(129, 'x'))));
}

}  // namespace
}  // namespace dinov3::logging
