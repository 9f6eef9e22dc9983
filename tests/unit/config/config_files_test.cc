// The YAML files under config/: the documented default file holds every key at exactly its
// built-in default (so it cannot drift from server_config.h), and the examples load and
// validate. Also ToYaml's comments, Summary and KnownKeys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

#include "config/config.h"

namespace dinov3::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kConfigDir = std::string(DINOV3_SOURCE_DIR) + "/config";

// Every "section.key" path that `file` sets.
std::set<std::string> KeysInFile(const std::string& file) {
  std::set<std::string> keys;
  for (const auto& section : YAML::LoadFile(file)) {
    for (const auto& key : section.second) {
      keys.insert(section.first.Scalar() + "." + key.first.Scalar());
    }
  }
  return keys;
}

TEST(ConfigFilesTest, DocumentedDefaultFileIsExactlyTheBuiltInDefaults) {
  const std::string file = kConfigDir + "/dinov3-server.yaml";
  absl::StatusOr<ServerConfig> config = LoadConfig({.file = file}, {.check_required = false});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, ServerConfig{}) << "config/dinov3-server.yaml differs from "
                                        "server_config.h; regenerate it with "
                                        "dinov3-server --print_config";
  const std::vector<std::string> known = KnownKeys();
  EXPECT_EQ(KeysInFile(file), std::set<std::string>(known.begin(), known.end()))
      << "config/dinov3-server.yaml must list every key";
}

TEST(ConfigFilesTest, ExamplesLoadAndValidate) {
  absl::StatusOr<ServerConfig> cpu = LoadConfig({.file = kConfigDir + "/examples/cpu.yaml"});
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  EXPECT_THAT(cpu->model.devices, ElementsAre("cpu"));

  absl::StatusOr<ServerConfig> gpu = LoadConfig({.file = kConfigDir + "/examples/gpu.yaml"});
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_THAT(gpu->model.devices, ElementsAre("cuda:0"));
  EXPECT_EQ(gpu->logging.format, "json");
  EXPECT_GT(gpu->batching.max_batch_size, ServerConfig{}.batching.max_batch_size);
  EXPECT_FALSE(gpu->batching.preferred_batch_sizes.empty());

  absl::StatusOr<ServerConfig> container =
      LoadConfig({.file = kConfigDir + "/examples/container.yaml"});
  ASSERT_TRUE(container.ok()) << container.status();
  EXPECT_EQ(container->model.path, "/models/dinov3.pt");
  EXPECT_EQ(container->server.listen, "0.0.0.0:50051");

  absl::StatusOr<ServerConfig> two = LoadConfig({.file = kConfigDir + "/examples/two-models.yaml"});
  ASSERT_TRUE(two.ok()) << two.status();
  const std::vector<ModelConfig> models = ResolveModels(*two);
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].name, "small");
  EXPECT_EQ(models[0].model.instances_per_device, 2);
  EXPECT_EQ(models[1].batching.max_batch_size, 4);
  EXPECT_EQ(models[1].model.compute_dtype, "auto");  // the top-level default
  EXPECT_EQ(DefaultModel(*two), "small");
}

TEST(ConfigFilesTest, ToYamlDocumentsEveryKey) {
  const std::string yaml = ToYaml(ServerConfig{});
  for (const std::string& key : KnownKeys()) {
    EXPECT_THAT(yaml, HasSubstr("# env " + EnvVarName(key) + "\n")) << key;
  }
  EXPECT_THAT(yaml, HasSubstr("  # most images per forward pass (1 = no batching); allowed: "
                              "1..1024\n  # env DINOV3_BATCHING_MAX_BATCH_SIZE\n"
                              "  max_batch_size: 8\n"));
  EXPECT_THAT(yaml, HasSubstr("\nlogging:\n"));
  EXPECT_THAT(yaml, HasSubstr("  devices: [cpu]\n"));
  EXPECT_THAT(yaml, HasSubstr("  path: \"\"\n"));
  EXPECT_THAT(yaml, HasSubstr("  max_queue_delay_ms: 2.0\n"));
  EXPECT_THAT(yaml, HasSubstr("  preferred_batch_sizes: []\n"));
}

TEST(ConfigFilesTest, SummaryIsOneLineWithEveryKey) {
  ServerConfig config;
  config.model.path = "/models/my model.pt";
  config.batching.preferred_batch_sizes = {4, 8};
  const std::string summary = Summary(config);
  EXPECT_THAT(summary, Not(HasSubstr("\n")));
  EXPECT_THAT(summary, HasSubstr("server.listen=127.0.0.1:50051 "));
  EXPECT_THAT(summary, HasSubstr(" model.path=\"/models/my model.pt\" "));
  EXPECT_THAT(summary, HasSubstr(" model.devices=cpu "));
  EXPECT_THAT(summary, HasSubstr(" batching.max_batch_size=8 "));
  EXPECT_THAT(summary, HasSubstr(" batching.preferred_batch_sizes=4,8 "));
  EXPECT_THAT(summary, HasSubstr(" metrics.enabled=true "));
  for (const std::string& key : KnownKeys()) EXPECT_THAT(summary, HasSubstr(key + "=")) << key;
}

TEST(ConfigFilesTest, KnownKeysAreUniqueAndInFileOrder) {
  const std::vector<std::string> keys = KnownKeys();
  EXPECT_EQ(keys.size(), 55u);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), keys.size());
  EXPECT_EQ(keys.front(), "server.listen");
  EXPECT_EQ(keys.back(), "metrics.basic_auth_file");
}

}  // namespace
}  // namespace dinov3::config
