// LoadConfig: precedence (default < file < environment < flag) for every key, environment
// variables (names, comma lists, ignored and misspelt ones), DINOV3_CONFIG, empty files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config/config_test_util.h"

namespace dinov3::config {
namespace {

using ::dinov3::config::testing::ConfigA;
using ::dinov3::config::testing::ConfigB;
using ::dinov3::config::testing::ConfigC;
using ::dinov3::config::testing::FieldTexts;
using ::dinov3::config::testing::WriteTempFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr LoadOptions kNoModel{.check_required = false};

TEST(ConfigLoadTest, NoSourcesGiveTheBuiltInDefaults) {
  absl::StatusOr<ServerConfig> config = LoadConfig({}, kNoModel);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, ServerConfig{});
  EXPECT_EQ(config->batching.max_batch_size, 8);
  EXPECT_EQ(config->server.max_receive_message_bytes, 67108864);
  EXPECT_THAT(config->model.devices, ElementsAre("cpu"));
  EXPECT_EQ(config->metrics.listen, "0.0.0.0:9464");
}

TEST(ConfigLoadTest, EachSourceAloneSetsEveryKey) {
  const std::map<std::string, std::string> b = FieldTexts(ConfigB());
  const std::map<std::string, std::string> c = FieldTexts(ConfigC());
  ConfigSources file_only{.file = WriteTempFile(ToYaml(ConfigA()))};
  ConfigSources env_only;
  for (const auto& [key, text] : b) env_only.env.emplace_back(EnvVarName(key), text);
  ConfigSources flags_only;
  for (const auto& [key, text] : c) flags_only.overrides.push_back({key, text, "--" + key});

  EXPECT_EQ(LoadConfig(file_only).value(), ConfigA());
  EXPECT_EQ(LoadConfig(env_only).value(), ConfigB());
  EXPECT_EQ(LoadConfig(flags_only).value(), ConfigC());
}

// The index of `key`, or of tls.cert_file for every tls.* key, or of model.name for
// model.name and model.default_model.
size_t KeyGroupIndex(const std::vector<std::string>& keys, const std::string& key) {
  std::string leader = key;
  if (key.rfind("tls.", 0) == 0) leader = "tls.cert_file";
  if (key == "model.default_model") leader = "model.name";
  if (key.rfind("admin.", 0) == 0) leader = "admin.api_keys_file";
  return static_cast<size_t>(std::find(keys.begin(), keys.end(), leader) - keys.begin());
}

// Key i is set by: (i+shift)%4 == 0 nothing, 1 the file, 2 file + env, 3 file + env + flag;
// the highest source present must win for every key, independently of the others.
TEST(ConfigLoadTest, PrecedenceIsPerKey) {
  const std::vector<std::string> keys = KnownKeys();
  const std::map<std::string, std::string> defaults = FieldTexts(ServerConfig{});
  const std::map<std::string, std::string> b = FieldTexts(ConfigB());
  const std::map<std::string, std::string> c = FieldTexts(ConfigC());
  const std::map<std::string, std::string> a = FieldTexts(ConfigA());
  for (size_t shift = 0; shift < 4; ++shift) {  // every key meets every combination
    YAML::Node file = YAML::Load(ToYaml(ConfigA()));
    ConfigSources sources;
    std::map<std::string, std::string> expected;
    for (size_t i = 0; i < keys.size(); ++i) {
      const std::string& key = keys[i];
      // The tls.* keys move together: the rules between them (cert and key go together)
      // would refuse some mixes of the four sources. So do model.name and
      // model.default_model, which must name the served model (model.name, when set), and the
      // admin.* keys (a model repository needs admin keys).
      const size_t level = (KeyGroupIndex(keys, key) + shift) % 4;
      const std::map<std::string, std::string>* winner[] = {&defaults, &a, &b, &c};
      expected[key] = winner[level]->at(key);
      if (level == 0) {
        const size_t dot = key.find('.');
        file[key.substr(0, dot)].remove(key.substr(dot + 1));
      }
      if (level >= 2) sources.env.emplace_back(EnvVarName(key), b.at(key));
      if (level >= 3) sources.overrides.push_back({key, c.at(key), "--" + key});
    }
    YAML::Emitter out;
    out << file;
    sources.file = WriteTempFile(out.c_str());
    absl::StatusOr<ServerConfig> config = LoadConfig(sources, kNoModel);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(FieldTexts(*config), expected) << "shift " << shift << "\n" << out.c_str();
  }
}

TEST(ConfigLoadTest, FileEnvFlagOnOneKey) {
  const std::string file = WriteTempFile(
      "batching:\n  max_batch_size: 4\n  max_queue_size: 100\nlogging:\n  level: debug\n");
  ConfigSources sources{
      .file = file,
      .env = {{"DINOV3_BATCHING_MAX_BATCH_SIZE", "16"}, {"DINOV3_BATCHING_MAX_QUEUE_SIZE", "50"}},
      .overrides = {{"batching.max_batch_size", "32", "--max_batch_size"}}};
  absl::StatusOr<ServerConfig> config = LoadConfig(sources, kNoModel);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->batching.max_batch_size, 32);  // flag > env > file
  EXPECT_EQ(config->batching.max_queue_size, 50);  // env > file
  EXPECT_EQ(config->logging.level, "debug");       // file > default
  EXPECT_EQ(config->limits.max_patches, 4096);     // default
}

TEST(ConfigLoadTest, LaterOverridesWin) {
  ConfigSources sources{.overrides = {{"model.devices", "cuda:1", "--device"},
                                      {"model.devices", "cuda:0,cuda:2", "--devices"}}};
  EXPECT_THAT(LoadConfig(sources, kNoModel)->model.devices, ElementsAre("cuda:0", "cuda:2"));
}

TEST(ConfigLoadTest, EnvironmentListsAreCommaSeparated) {
  ConfigSources sources{.env = {{"DINOV3_MODEL_DEVICES", "cuda:0, cuda:1"},
                                {"DINOV3_BATCHING_PREFERRED_BATCH_SIZES", "4,8"},
                                {"DINOV3_METRICS_ENABLED", "false"},
                                {"DINOV3_MODEL_PATH", "/m.pt"}}};
  absl::StatusOr<ServerConfig> config = LoadConfig(sources);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->model.devices, ElementsAre("cuda:0", "cuda:1"));
  EXPECT_THAT(config->batching.preferred_batch_sizes, ElementsAre(4, 8));
  EXPECT_FALSE(config->metrics.enabled);
  EXPECT_EQ(config->model.path, "/m.pt");
}

TEST(ConfigLoadTest, EnvVarNames) {
  EXPECT_EQ(EnvVarName("batching.max_batch_size"), "DINOV3_BATCHING_MAX_BATCH_SIZE");
  EXPECT_EQ(EnvVarName("model.path"), "DINOV3_MODEL_PATH");
  EXPECT_EQ(EnvVarName("metrics.listen"), "DINOV3_METRICS_LISTEN");
}

TEST(ConfigLoadTest, UnknownAndEmptyVariablesAreIgnored) {
  ConfigSources sources{.env = {{"DINOV3_PORT", "tcp://10.0.0.1:50051"},
                                {"DINOV3_SERVER_SERVICE_HOST", "10.0.0.1"},
                                {"DINOV3_ENGINE_TEST_DEVICE", "cuda"},
                                {"MAX_BATCH_SIZE", "0"},
                                {"PATH", "/usr/bin"},
                                {"DINOV3_BATCHING_MAX_QUEUE_SIZE", ""}}};
  std::vector<std::string> warnings;
  absl::StatusOr<ServerConfig> config = LoadConfig(sources, kNoModel, &warnings);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, ServerConfig{});
  EXPECT_THAT(warnings, IsEmpty());
}

TEST(ConfigLoadTest, MisspeltVariablesAreIgnoredWithAWarning) {
  ConfigSources sources{
      .env = {{"DINOV3_BATCHING_MAX_BATCHSIZE", "0"}, {"DINOV3_MAX_QUEUE_SIZE", "0"}}};
  std::vector<std::string> warnings;
  absl::StatusOr<ServerConfig> config = LoadConfig(sources, kNoModel, &warnings);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, ServerConfig{});
  EXPECT_THAT(warnings,
              ElementsAre(HasSubstr("DINOV3_BATCHING_MAX_BATCHSIZE: not a config key; did you "
                                    "mean DINOV3_BATCHING_MAX_BATCH_SIZE?"),
                          HasSubstr("did you mean DINOV3_BATCHING_MAX_QUEUE_SIZE?")));
}

TEST(ConfigLoadTest, ConfigFileVariableNamesTheFileUnlessOneIsGiven) {
  const std::string from_env = WriteTempFile("batching:\n  max_batch_size: 3\n");
  const std::string from_flag = WriteTempFile("batching:\n  max_batch_size: 5\n");
  ConfigSources sources{.env = {{"DINOV3_CONFIG", from_env}}};
  EXPECT_EQ(LoadConfig(sources, kNoModel)->batching.max_batch_size, 3);
  sources.file = from_flag;
  EXPECT_EQ(LoadConfig(sources, kNoModel)->batching.max_batch_size, 5);
}

TEST(ConfigLoadTest, EmptyAndCommentOnlyFilesSetNothing) {
  for (const std::string contents : {"", "\n\n", "# nothing here\n  # indented comment\n", "---\n",
                                     "server:\nbatching:  # empty sections\n"}) {
    absl::StatusOr<ServerConfig> config = LoadConfig({.file = WriteTempFile(contents)}, kNoModel);
    ASSERT_TRUE(config.ok()) << "'" << contents << "': " << config.status();
    EXPECT_EQ(*config, ServerConfig{}) << contents;
  }
}

TEST(ConfigLoadTest, ToYamlRoundTrips) {
  ServerConfig odd = ConfigA();
  odd.model.path = "/models/my model #1: yes.pt";
  odd.server.listen = "unix:/tmp/a b.sock";
  for (const ServerConfig& config : {ConfigA(), ConfigB(), ConfigC(), odd}) {
    absl::StatusOr<ServerConfig> loaded = LoadConfig({.file = WriteTempFile(ToYaml(config))});
    ASSERT_TRUE(loaded.ok()) << loaded.status() << "\n" << ToYaml(config);
    EXPECT_EQ(*loaded, config) << ToYaml(config);
  }
  for (const std::string path : {"", "123", "yes", "null", "~", "1e3", "'quoted'", "[x]"}) {
    ServerConfig config;
    config.model.path = path;
    absl::StatusOr<ServerConfig> loaded =
        LoadConfig({.file = WriteTempFile(ToYaml(config))}, kNoModel);
    ASSERT_TRUE(loaded.ok()) << loaded.status() << "\n" << ToYaml(config);
    EXPECT_EQ(loaded->model.path, path) << ToYaml(config);
  }
}

}  // namespace
}  // namespace dinov3::config
