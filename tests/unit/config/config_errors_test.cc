// LoadConfig errors: where the value came from (file and line, variable, flag), unknown keys
// and sections with suggestions, type errors, YAML syntax errors, unreadable files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "config/config.h"
#include "tests/unit/config/config_test_util.h"

namespace dinov3::config {
namespace {

using ::dinov3::config::testing::WriteTempFile;
using ::testing::HasSubstr;

constexpr LoadOptions kNoModel{.check_required = false};

// The error message of loading `yaml` as the config file (with the file's path as $FILE).
std::string FileError(const std::string& yaml) {
  const std::string path = WriteTempFile(yaml);
  absl::StatusOr<ServerConfig> config = LoadConfig({.file = path}, kNoModel);
  if (config.ok()) return "OK";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  std::string message(config.status().message());
  const size_t at = message.find(path);
  if (at != std::string::npos) message.replace(at, path.size(), "$FILE");
  return message;
}

std::string EnvError(const std::string& name, const std::string& value) {
  absl::StatusOr<ServerConfig> config = LoadConfig({.env = {{name, value}}}, kNoModel);
  return config.ok() ? "OK" : std::string(config.status().message());
}

TEST(ConfigErrorsTest, FileValueOutOfRangeNamesFileKeyAndLine) {
  EXPECT_EQ(FileError("# comment\nbatching:\n  max_batch_size: 0\n"),
            "config file $FILE: batching.max_batch_size must be between 1 and 1024, got 0 "
            "(line 3)");
}

TEST(ConfigErrorsTest, EnvironmentErrorsNameTheVariable) {
  EXPECT_EQ(EnvError("DINOV3_BATCHING_MAX_BATCH_SIZE", "0"),
            "environment DINOV3_BATCHING_MAX_BATCH_SIZE: batching.max_batch_size must be "
            "between 1 and 1024, got 0");
  EXPECT_EQ(EnvError("DINOV3_BATCHING_MAX_BATCH_SIZE", "abc"),
            "environment DINOV3_BATCHING_MAX_BATCH_SIZE: batching.max_batch_size must be an "
            "integer, got 'abc'");
  EXPECT_EQ(EnvError("DINOV3_BATCHING_PREFERRED_BATCH_SIZES", "4,x"),
            "environment DINOV3_BATCHING_PREFERRED_BATCH_SIZES: batching.preferred_batch_sizes "
            "must be a comma-separated list of integers, got '4,x'");
  EXPECT_EQ(EnvError("DINOV3_METRICS_ENABLED", "maybe"),
            "environment DINOV3_METRICS_ENABLED: metrics.enabled must be true or false, got "
            "'maybe'");
  EXPECT_EQ(EnvError("DINOV3_BATCHING_MAX_QUEUE_DELAY_MS", "soon"),
            "environment DINOV3_BATCHING_MAX_QUEUE_DELAY_MS: batching.max_queue_delay_ms must "
            "be a number, got 'soon'");
  EXPECT_EQ(EnvError("DINOV3_LIMITS_MAX_PATCHES", "99999999999"),
            "environment DINOV3_LIMITS_MAX_PATCHES: limits.max_patches is out of range, got "
            "99999999999");
}

TEST(ConfigErrorsTest, FlagErrorsNameTheFlag) {
  ConfigSources sources{.overrides = {{"batching.max_batch_size", "0", "--max_batch_size"}}};
  EXPECT_EQ(LoadConfig(sources, kNoModel).status().message(),
            "--max_batch_size: batching.max_batch_size must be between 1 and 1024, got 0");
  sources.overrides = {{"batching.no_such_key", "1", "--no_such_flag"}};
  EXPECT_THAT(LoadConfig(sources, kNoModel).status().message(),
              HasSubstr("--no_such_flag: unknown key 'batching.no_such_key'"));
}

TEST(ConfigErrorsTest, ValidationBlamesTheSourceThatWon) {
  ConfigSources sources{.file = WriteTempFile("logging:\n  level: loud\n"),
                        .env = {{"DINOV3_LOGGING_LEVEL", "quiet"}}};
  EXPECT_EQ(LoadConfig(sources, kNoModel).status().message(),
            "environment DINOV3_LOGGING_LEVEL: logging.level must be one of trace, debug, info, "
            "warn, error, critical, off; got 'quiet'");
}

TEST(ConfigErrorsTest, UnknownKeysAreErrorsWithSuggestions) {
  EXPECT_EQ(FileError("batching:\n  max_batchsize: 4\n"),
            "config file $FILE: unknown key 'batching.max_batchsize'; did you mean "
            "'batching.max_batch_size'? (line 2)");
  EXPECT_EQ(FileError("server:\n  max_batch_size: 4\n"),  // right key, wrong section
            "config file $FILE: unknown key 'server.max_batch_size'; did you mean "
            "'batching.max_batch_size'? (line 2)");
  EXPECT_EQ(FileError("batchng:\n  max_batch_size: 4\n"),
            "config file $FILE: unknown section 'batchng'; did you mean 'batching'? (line 1)");
  EXPECT_EQ(FileError("metrics:\n  frobnicate: 1\n"),
            "config file $FILE: unknown key 'metrics.frobnicate'; known keys of metrics: "
            "enabled, listen, basic_auth_file (line 2)");
  EXPECT_EQ(FileError("model:\n  path: /m.pt\ntracing:\n  endpoint: /c.pem\n"),
            "config file $FILE: unknown section 'tracing'; known sections: server, tls, auth, "
            "admin, http, model, limits, batching, logging, metrics (line 3)");
  EXPECT_EQ(FileError("max_batch_size: 4\n"),
            "config file $FILE: unknown key 'max_batch_size'; did you mean "
            "'batching.max_batch_size'? (line 1)");
}

TEST(ConfigErrorsTest, TypeErrorsNameKeyAndExpectedType) {
  EXPECT_EQ(FileError("batching:\n  max_batch_size: eight\n"),
            "config file $FILE: batching.max_batch_size must be an integer, got 'eight' "
            "(line 2)");
  EXPECT_EQ(FileError("batching:\n  max_batch_size: 2.5\n"),
            "config file $FILE: batching.max_batch_size must be an integer, got '2.5' (line 2)");
  EXPECT_EQ(FileError("batching:\n  max_batch_size:\n    value: 4\n"),
            "config file $FILE: batching.max_batch_size must be an integer, got a mapping "
            "(line 2)");
  EXPECT_EQ(FileError("batching:\n  max_batch_size:\n"),
            "config file $FILE: batching.max_batch_size must be an integer, got no value "
            "(line 2)");
  EXPECT_EQ(FileError("model:\n  devices: cuda:0\n"),
            "config file $FILE: model.devices must be a list of strings, got 'cuda:0' (line 2)");
  EXPECT_EQ(FileError("model:\n  path: [a.pt]\n"),
            "config file $FILE: model.path must be a string, got a list (line 2)");
  EXPECT_EQ(FileError("batching:\n  preferred_batch_sizes: [4, four]\n"),
            "config file $FILE: batching.preferred_batch_sizes[1] must be an integer, got "
            "'four' (line 2)");
  EXPECT_EQ(FileError("metrics:\n  enabled: sometimes\n"),
            "config file $FILE: metrics.enabled must be true or false, got 'sometimes' "
            "(line 2)");
  EXPECT_EQ(FileError("server:\n  drain_seconds: long\n"),
            "config file $FILE: server.drain_seconds must be a number, got 'long' (line 2)");
  EXPECT_EQ(FileError("batching: 8\n"),
            "config file $FILE: batching must be a mapping of keys (max_batch_size, "
            "max_queue_delay_ms, preferred_batch_sizes, max_batch_pixels, max_queue_size) "
            "(line 1)");
  EXPECT_EQ(FileError("- server\n- model\n"),
            "config file $FILE: the top level must be a mapping of sections (server:, model:, "
            "...)");
}

TEST(ConfigErrorsTest, DuplicateKeysAreErrors) {
  EXPECT_EQ(FileError("batching:\n  max_batch_size: 4\n  max_batch_size: 16\n"),
            "config file $FILE: duplicate key 'batching.max_batch_size' (line 3)");
}

TEST(ConfigErrorsTest, YamlSyntaxErrorsNameTheLine) {
  EXPECT_EQ(FileError("logging:\n  level: info\n  format: text: json\n"),
            "config file $FILE: YAML syntax error at line 3, column 15: illegal map value");
  EXPECT_EQ(FileError("server:\n  listen: a\n drain_seconds: 1\n"),
            "config file $FILE: YAML syntax error at line 3, column 2: end of map not found");
  EXPECT_THAT(FileError("batching:\n  max_batch_size: 4\n  preferred_batch_sizes: [4, 8\n"
                        "logging:\n  level: info\n"),
              HasSubstr("config file $FILE: YAML syntax error at line 4"));
  EXPECT_THAT(FileError("server:\n\tlisten: a\n"),
              HasSubstr("config file $FILE: YAML syntax error at line 2"));
}

TEST(ConfigErrorsTest, UnreadableFile) {
  absl::StatusOr<ServerConfig> config = LoadConfig({.file = "/nonexistent/dinov3.yaml"});
  EXPECT_EQ(config.status().message(),
            "config file /nonexistent/dinov3.yaml: cannot read: No such file or directory");
}

TEST(ConfigErrorsTest, DirectoryIsNotAConfigFile) {
  // e.g. a Kubernetes ConfigMap mount given instead of the file in it
  const std::string dir = ::testing::TempDir();
  absl::StatusOr<ServerConfig> config = LoadConfig({.file = dir});
  EXPECT_EQ(config.status().message(),
            "config file " + dir + ": not a regular file (a directory?)");
}

TEST(ConfigErrorsTest, ModelPathIsRequiredUnlessAskedNotTo) {
  EXPECT_EQ(LoadConfig({}).status().message(),
            "model.path is required (export one with python -m model.export)");
  EXPECT_TRUE(LoadConfig({}, kNoModel).ok());
  // Without the model check every other check still applies.
  EXPECT_THAT(LoadConfig({.env = {{"DINOV3_LOGGING_FORMAT", "xml"}}}, kNoModel).status().message(),
              HasSubstr("logging.format must be one of text, json; got 'xml'"));
  EXPECT_TRUE(LoadConfig({.env = {{"DINOV3_MODEL_PATH", "/m.pt"}}}).ok());
}

}  // namespace
}  // namespace dinov3::config
