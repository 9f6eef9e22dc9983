// The models list of the config file (config/model_list.cc): ResolveModels (each entry's own
// per-model keys over the top-level model.* / batching.* values, every other key inherited,
// also from the environment and flags), DefaultModel, the single-model form and
// DefaultModelName, every error of the list (entry, key, limit and file line), and the list's
// ToYaml round trip and Summary.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "config/config.h"
#include "tests/unit/config/config_test_util.h"

namespace dinov3::config {
namespace {

using ::dinov3::config::testing::WriteTempFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr LoadOptions kNoModel{.check_required = false};

// Loads `yaml` as the config file; fails the test on an error.
ServerConfig LoadYaml(const std::string& yaml, const ConfigSources& more = {}) {
  ConfigSources sources = more;
  sources.file = WriteTempFile(yaml);
  absl::StatusOr<ServerConfig> config = LoadConfig(sources);
  EXPECT_TRUE(config.ok()) << config.status() << "\n" << yaml;
  return config.ok() ? *config : ServerConfig{};
}

// The error of loading `yaml` as the config file, its path replaced by $FILE; "OK" if none.
std::string FileError(const std::string& yaml, const ConfigSources& more = {},
                      const LoadOptions& options = {}) {
  ConfigSources sources = more;
  sources.file = WriteTempFile(yaml);
  absl::StatusOr<ServerConfig> config = LoadConfig(sources, options);
  if (config.ok()) return "OK";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  return absl::StrReplaceAll(config.status().message(), {{sources.file, "$FILE"}});
}

// An entry that sets no per-model key.
ModelEntry Entry(const std::string& name, const std::string& path) {
  ModelEntry entry;
  entry.name = name;
  entry.path = path;
  return entry;
}

// Two models, vits16 with its own keys and vitl16 with none, under non-default top-level keys.
constexpr char kTwoModels[] =
    "model:\n"
    "  devices: [cuda:0]\n"
    "  instances_per_device: 2\n"
    "  compute_dtype: float16\n"
    "  intra_op_threads: 3\n"
    "batching:\n"
    "  max_batch_size: 16\n"
    "  preferred_batch_sizes: [8, 16]\n"
    "  max_queue_delay_ms: 4.5\n"
    "models:\n"
    "  - name: vits16\n"
    "    path: /m/vits16.pt\n"
    "    instances_per_device: 4\n"
    "    compute_dtype: bfloat16\n"
    "    max_batch_size: 32\n"
    "    preferred_batch_sizes: [4, 32]\n"
    "    devices: [cuda:1, cpu]\n"
    "  - name: vitl16\n"
    "    path: /m/vitl16.pt\n";

// The model `config` gives an entry that sets no key of its own.
ModelConfig Inherited(const ServerConfig& config, const std::string& name,
                      const std::string& path) {
  ModelConfig model{name, config.model, config.batching};
  model.model.path = path;
  return model;
}

// --- Resolving -------------------------------------------------------------------------------

TEST(ConfigModelListTest, TwoEntriesResolveInOrderWithTheirOwnKeysOverTheTopLevel) {
  const ServerConfig config = LoadYaml(kTwoModels);
  const std::vector<ModelConfig> models = ResolveModels(config);
  ASSERT_THAT(models, SizeIs(2));

  ModelConfig vits16 = Inherited(config, "vits16", "/m/vits16.pt");
  vits16.model.instances_per_device = 4;
  vits16.model.compute_dtype = "bfloat16";
  vits16.model.devices = {"cuda:1", "cpu"};
  vits16.batching.max_batch_size = 32;
  vits16.batching.preferred_batch_sizes = {4, 32};
  EXPECT_EQ(models[0], vits16);
  // Keys vits16 leaves out are the top level's, not the built-in defaults.
  EXPECT_EQ(models[0].model.intra_op_threads, 3);
  EXPECT_EQ(models[0].batching.max_queue_delay_ms, 4.5);

  EXPECT_EQ(models[1], Inherited(config, "vitl16", "/m/vitl16.pt"));
  EXPECT_THAT(models[1].model.devices, ElementsAre("cuda:0"));
  EXPECT_EQ(models[1].model.instances_per_device, 2);
  EXPECT_EQ(models[1].model.compute_dtype, "float16");
  EXPECT_EQ(models[1].batching.max_batch_size, 16);
  EXPECT_THAT(models[1].batching.preferred_batch_sizes, ElementsAre(8, 16));

  // The top level itself is untouched by the entries.
  EXPECT_EQ(config.model.path, "");
  EXPECT_EQ(config.model.instances_per_device, 2);
  EXPECT_EQ(config.batching.max_batch_size, 16);
}

TEST(ConfigModelListTest, EntriesHoldOnlyTheirOwnKeysInFileOrder) {
  const ServerConfig config = LoadYaml(kTwoModels);
  ASSERT_THAT(config.models, SizeIs(2));
  const ModelEntry& vits16 = config.models[0];
  EXPECT_EQ(vits16.name, "vits16");
  EXPECT_EQ(vits16.path, "/m/vits16.pt");
  EXPECT_THAT(vits16.keys_set, ElementsAre("model.instances_per_device", "model.compute_dtype",
                                           "batching.max_batch_size",
                                           "batching.preferred_batch_sizes", "model.devices"));
  EXPECT_EQ(vits16.model.instances_per_device, 4);
  EXPECT_EQ(vits16.batching.max_batch_size, 32);
  EXPECT_EQ(vits16.model.intra_op_threads, ModelSection{}.intra_op_threads);  // not its own
  const ModelEntry& vitl16 = config.models[1];
  EXPECT_EQ(vitl16.name, "vitl16");
  EXPECT_EQ(vitl16.path, "/m/vitl16.pt");
  EXPECT_THAT(vitl16.keys_set, ::testing::IsEmpty());
  EXPECT_EQ(vitl16.model, ModelSection{});
  EXPECT_EQ(vitl16.batching, BatchingSection{});
}

TEST(ConfigModelListTest, EveryPerModelKeyOverrides) {
  const ServerConfig config = LoadYaml(
      "models:\n"
      "  - name: all\n"
      "    path: /m/all.pt\n"
      "    devices: [cuda:2]\n"
      "    instances_per_device: 3\n"
      "    intra_op_threads: 5\n"
      "    compute_dtype: auto\n"
      "    max_batch_size: 12\n"
      "    max_queue_delay_ms: 7.25\n"
      "    preferred_batch_sizes: [6, 12]\n"
      "    max_batch_pixels: 1000000\n"
      "    max_queue_size: 77\n"
      "  - name: none\n"
      "    path: /m/none.pt\n");
  const std::vector<ModelConfig> models = ResolveModels(config);
  ASSERT_THAT(models, SizeIs(2));
  const ModelConfig& all = models[0];
  EXPECT_EQ(all.name, "all");
  EXPECT_EQ(all.model.path, "/m/all.pt");
  EXPECT_THAT(all.model.devices, ElementsAre("cuda:2"));
  EXPECT_EQ(all.model.instances_per_device, 3);
  EXPECT_EQ(all.model.intra_op_threads, 5);
  EXPECT_EQ(all.model.compute_dtype, "auto");
  EXPECT_EQ(all.batching.max_batch_size, 12);
  EXPECT_EQ(all.batching.max_queue_delay_ms, 7.25);
  EXPECT_THAT(all.batching.preferred_batch_sizes, ElementsAre(6, 12));
  EXPECT_EQ(all.batching.max_batch_pixels, 1000000);
  EXPECT_EQ(all.batching.max_queue_size, 77);
  EXPECT_THAT(config.models[0].keys_set, SizeIs(9));
  // The other entry has the built-in defaults, which the top level keeps here.
  EXPECT_EQ(models[1], Inherited(ServerConfig{}, "none", "/m/none.pt"));
}

TEST(ConfigModelListTest, LeftOutKeysTakeTopLevelValuesFromEnvironmentAndFlags) {
  const std::string yaml =
      "models:\n"
      "  - name: a\n"
      "    path: /m/a.pt\n"
      "    max_batch_size: 32\n"
      "    compute_dtype: bfloat16\n"
      "  - name: b\n"
      "    path: /m/b.pt\n"
      "batching:\n"  // after the list: file order does not matter
      "  max_queue_size: 99\n";
  const ServerConfig config =
      LoadYaml(yaml, {.env = {{"DINOV3_BATCHING_MAX_BATCH_SIZE", "4"},
                              {"DINOV3_MODEL_COMPUTE_DTYPE", "float32"},
                              {"DINOV3_MODEL_DEVICES", "cuda:0,cuda:1"}},
                      .overrides = {{"model.instances_per_device", "3", "--instances_per_device"},
                                    {"batching.max_queue_delay_ms", "9", "--max_queue_delay_ms"}}});
  const std::vector<ModelConfig> models = ResolveModels(config);
  ASSERT_THAT(models, SizeIs(2));
  // a's own keys win over the environment; the rest follow the environment and flags.
  EXPECT_EQ(models[0].batching.max_batch_size, 32);
  EXPECT_EQ(models[0].model.compute_dtype, "bfloat16");
  EXPECT_THAT(models[0].model.devices, ElementsAre("cuda:0", "cuda:1"));
  EXPECT_EQ(models[0].model.instances_per_device, 3);
  EXPECT_EQ(models[0].batching.max_queue_delay_ms, 9);
  EXPECT_EQ(models[0].batching.max_queue_size, 99);
  EXPECT_EQ(models[1], Inherited(config, "b", "/m/b.pt"));
  EXPECT_EQ(models[1].batching.max_batch_size, 4);
  EXPECT_EQ(models[1].model.compute_dtype, "float32");
  EXPECT_THAT(models[1].model.devices, ElementsAre("cuda:0", "cuda:1"));
  EXPECT_EQ(models[1].model.instances_per_device, 3);
  EXPECT_EQ(models[1].batching.max_queue_delay_ms, 9);
  EXPECT_EQ(models[1].batching.max_queue_size, 99);
}

TEST(ConfigModelListTest, EntryPreferredSizesAreCheckedAgainstItsOwnMaxBatchSize) {
  // The top level's max_batch_size is 8; the entry's own 32 allows preferred size 32.
  EXPECT_EQ(FileError("models:\n"
                      "  - name: a\n"
                      "    path: /m/a.pt\n"
                      "    max_batch_size: 32\n"
                      "    preferred_batch_sizes: [32]\n"),
            "OK");
}

// A bug when it fails: model a runs with max_batch_size 4 and the inherited preferred size 8.
TEST(ConfigModelListTest, InheritedPreferredSizesAreCheckedAgainstTheEntrysMaxBatchSize) {
  const std::string error = FileError(
      "batching:\n"
      "  preferred_batch_sizes: [8]\n"
      "models:\n"
      "  - name: a\n"
      "    path: /m/a.pt\n"
      "    max_batch_size: 4\n");
  EXPECT_THAT(error, HasSubstr("models[0] (a)"));
  EXPECT_THAT(error, HasSubstr("preferred_batch_sizes"));
}

// --- DefaultModel ----------------------------------------------------------------------------

TEST(ConfigModelListTest, DefaultModelIsTheFirstEntryUnlessNamed) {
  EXPECT_EQ(DefaultModel(LoadYaml(kTwoModels)), "vits16");
  const ServerConfig named =
      LoadYaml(kTwoModels, {.env = {{"DINOV3_MODEL_DEFAULT_MODEL", "vitl16"}}});
  EXPECT_EQ(named.model.default_model, "vitl16");
  EXPECT_EQ(DefaultModel(named), "vitl16");
  const ServerConfig in_file = LoadYaml(
      "model:\n  default_model: b\nmodels:\n  - name: a\n    path: /m/a.pt\n"
      "  - name: b\n    path: /m/b.pt\n");
  EXPECT_EQ(DefaultModel(in_file), "b");
  // Resolving does not reorder the list.
  EXPECT_EQ(ResolveModels(in_file).front().name, "a");
}

// --- The single-model form -------------------------------------------------------------------

TEST(ConfigModelListTest, WithoutAListModelPathIsTheOneModelNamedByItsFile) {
  const ServerConfig config = LoadYaml(
      "model:\n  path: /m/dinov3-vits16.pt\n  instances_per_device: 2\n"
      "batching:\n  max_batch_size: 16\n");
  EXPECT_THAT(config.models, ::testing::IsEmpty());
  EXPECT_EQ(config.model.name, "");
  EXPECT_THAT(ResolveModels(config),
              ElementsAre(ModelConfig{"dinov3-vits16", config.model, config.batching}));
  EXPECT_EQ(DefaultModel(config), "dinov3-vits16");
  EXPECT_EQ(ResolveModels(config)[0].model.path, "/m/dinov3-vits16.pt");
  EXPECT_EQ(ResolveModels(config)[0].model.instances_per_device, 2);
  EXPECT_EQ(ResolveModels(config)[0].batching.max_batch_size, 16);
}

TEST(ConfigModelListTest, WithoutAListModelNameNamesTheOneModel) {
  const ServerConfig config = LoadYaml("model:\n  path: /m/dinov3-vits16.pt\n  name: small\n");
  EXPECT_THAT(ResolveModels(config),
              ElementsAre(ModelConfig{"small", config.model, config.batching}));
  EXPECT_EQ(DefaultModel(config), "small");
  // model.default_model may name the one model.
  EXPECT_EQ(FileError("model:\n  path: /m/dinov3-vits16.pt\n  default_model: dinov3-vits16\n"),
            "OK");
  EXPECT_EQ(FileError("model:\n  path: /m/x.pt\n  name: small\n  default_model: small\n"), "OK");
  // An empty list is the single-model form too.
  const ServerConfig empty = LoadYaml("model:\n  path: /m/x.pt\nmodels: []\n");
  EXPECT_THAT(empty.models, ::testing::IsEmpty());
  EXPECT_EQ(DefaultModel(empty), "x");
  EXPECT_EQ(LoadConfig({.file = WriteTempFile("models: []\n")}).status().message(),
            "model.path is required (export one with python -m model.export)");
}

TEST(ConfigModelListTest, DefaultModelNameIsTheSanitisedFileStem) {
  EXPECT_EQ(DefaultModelName("/m/dinov3-vits16.pt"), "dinov3-vits16");
  EXPECT_EQ(DefaultModelName("/m/vits16 v2.pt"), "vits16_v2");
  EXPECT_EQ(DefaultModelName("/models/my model #1: yes.pt"), "my_model__1__yes");
  EXPECT_EQ(DefaultModelName("relative.pt"), "relative");
  EXPECT_EQ(DefaultModelName("/m/noext"), "noext");
  EXPECT_EQ(DefaultModelName("/m/v1.2.pt"), "v1.2");
  EXPECT_EQ(DefaultModelName("/m.d/x_y"), "x_y");
  EXPECT_EQ(DefaultModelName("/m/.hidden"), ".hidden");
  EXPECT_EQ(DefaultModelName("/m/caf\xc3\xa9.pt"), "caf__");
  EXPECT_EQ(DefaultModelName(std::string(100, 'a') + ".pt"), std::string(64, 'a'));
  // No usable stem: "default".
  EXPECT_EQ(DefaultModelName(""), "default");
  EXPECT_EQ(DefaultModelName("/m/dir/"), "default");
  EXPECT_EQ(DefaultModelName("/m/..pt"), "default");
  EXPECT_EQ(DefaultModelName("/m/.."), "default");
}

TEST(ConfigModelListTest, DefaultModelNamesAreValidNames) {
  const std::vector<std::string> paths = {"/m/dinov3-vits16.pt",
                                          "/m/vits16 v2.pt",
                                          "/m/a/b/c:d.pt",
                                          "/m/caf\xc3\xa9.pt",
                                          "/m/" + std::string(200, 'x') + ".pt",
                                          "/m/dir/",
                                          "/m/..pt",
                                          "/m/...",
                                          "x"};
  for (const std::string& path : paths) {
    const std::string name = DefaultModelName(path);
    // model.default_model is checked as a name and must match the one model's name.
    ConfigSources sources{.overrides = {{"model.path", path, "--model"},
                                        {"model.default_model", name, "--default_model"}}};
    absl::StatusOr<ServerConfig> config = LoadConfig(sources);
    EXPECT_TRUE(config.ok()) << path << " -> " << name << ": " << config.status();
  }
}

// --- Errors ----------------------------------------------------------------------------------

TEST(ConfigModelListTest, DuplicateNames) {
  EXPECT_EQ(FileError("models:\n"
                      "  - name: a\n"
                      "    path: /m/a.pt\n"
                      "  - name: a\n"
                      "    path: /m/b.pt\n"),
            "config file $FILE: models[1].name 'a' is also models[0] (a)'s: names must be "
            "unique (line 4)");
  // Without origins (Validate of a config built in code), the same message alone.
  ServerConfig config;
  config.models = {Entry("x", "/m/x.pt"), Entry("y", "/m/y.pt"), Entry("x", "/m/z.pt")};
  EXPECT_EQ(Validate(config).message(),
            "models[2].name 'x' is also models[0] (x)'s: names must be unique");
}

TEST(ConfigModelListTest, BadNames) {
  const std::string rule = "must be 1 to 64 letters, digits, '-', '_' or '.' (not . or ..), got";
  const auto entry = [](const std::string& name_line) {
    return absl::StrCat("models:\n  - name: x\n    path: /m/x.pt\n  - ", name_line,
                        "\n    path: /m/y.pt\n");
  };
  EXPECT_EQ(
      FileError(entry("name: a/b")),
      absl::StrCat("config file $FILE: models[1] (a/b): models[1].name ", rule, " 'a/b' (line 4)"));
  EXPECT_EQ(
      FileError(entry("name: ..")),
      absl::StrCat("config file $FILE: models[1] (..): models[1].name ", rule, " '..' (line 4)"));
  EXPECT_EQ(
      FileError(entry("name: .")),
      absl::StrCat("config file $FILE: models[1] (.): models[1].name ", rule, " '.' (line 4)"));
  EXPECT_EQ(
      FileError(entry("name: 'a b'")),
      absl::StrCat("config file $FILE: models[1] (a b): models[1].name ", rule, " 'a b' (line 4)"));
  EXPECT_EQ(FileError(entry("name: \"\"")),
            absl::StrCat("config file $FILE: models[1]: models[1].name ", rule, " '' (line 4)"));
  // A missing name is an empty one.
  EXPECT_EQ(FileError("models:\n  - path: /m/x.pt\n"),
            absl::StrCat("config file $FILE: models[0]: models[0].name ", rule, " '' (line 2)"));
  const std::string long_name(65, 'n');
  EXPECT_EQ(FileError(entry("name: " + long_name)),
            absl::StrCat("config file $FILE: models[1] (", long_name, "): models[1].name ", rule,
                         " '", long_name, "' (line 4)"));
  EXPECT_EQ(FileError(entry("name: " + std::string(64, 'n'))), "OK");
  EXPECT_EQ(FileError(entry("name: A-z_0.9")), "OK");
  // Not a string.
  EXPECT_EQ(FileError(entry("name: [a]")),
            "config file $FILE: models[1].name must be a string, got a list (line 4)");
}

TEST(ConfigModelListTest, BadTopLevelModelName) {
  EXPECT_EQ(FileError("model:\n  path: /m/x.pt\n  name: a/b\n"),
            "config file $FILE: model.name must be 1 to 64 letters, digits, '-', '_' or '.' "
            "(not . or ..), got 'a/b' (line 3)");
}

TEST(ConfigModelListTest, MissingPath) {
  EXPECT_EQ(FileError("models:\n"
                      "  - name: a\n"
                      "    path: /m/a.pt\n"
                      "  - name: b\n"
                      "    max_batch_size: 4\n"),
            "config file $FILE: models[1] (b): models[1].path is required (the model's export) "
            "(line 4)");
  EXPECT_EQ(FileError("models:\n  - name: b\n    path: \"\"\n"),
            "config file $FILE: models[0] (b): models[0].path is required (the model's export) "
            "(line 2)");
}

TEST(ConfigModelListTest, UnknownKeysInAnEntry) {
  EXPECT_EQ(FileError("models:\n"
                      "  - name: a\n"
                      "    path: /m/a.pt\n"
                      "  - name: b\n"
                      "    path: /m/b.pt\n"
                      "    max_batchsize: 4\n"),
            "config file $FILE: unknown key 'models[1].max_batchsize'; did you mean "
            "'max_batch_size'? (line 6)");
  EXPECT_EQ(FileError("models:\n  - name: a\n    pth: /m/a.pt\n"),
            "config file $FILE: unknown key 'models[0].pth'; did you mean 'path'? (line 3)");
  // A server-wide key: the keys an entry may set.
  EXPECT_EQ(FileError("models:\n  - name: a\n    path: /m/a.pt\n    max_pixels: 4\n"),
            "config file $FILE: unknown key 'models[0].max_pixels'; an entry has name, path, "
            "devices, instances_per_device, intra_op_threads, compute_dtype, max_batch_size, "
            "max_queue_delay_ms, preferred_batch_sizes, max_batch_pixels, max_queue_size (the "
            "other keys are server-wide) (line 4)");
  // The full key is not an entry's key either.
  EXPECT_THAT(FileError("models:\n  - name: a\n    path: /m/a.pt\n    model.devices: [cpu]\n"),
              HasSubstr("unknown key 'models[0].model.devices'"));
}

TEST(ConfigModelListTest, DuplicateKeysInAnEntry) {
  EXPECT_EQ(FileError("models:\n"
                      "  - name: a\n"
                      "    path: /m/a.pt\n"
                      "    max_batch_size: 4\n"
                      "    max_batch_size: 8\n"),
            "config file $FILE: duplicate key 'models[0].max_batch_size' (line 5)");
  EXPECT_EQ(FileError("models:\n  - name: a\n    path: /m/a.pt\n    name: b\n"),
            "config file $FILE: duplicate key 'models[0].name' (line 4)");
  EXPECT_EQ(FileError("models:\n  - name: a\n    path: /m/a.pt\n    path: /m/b.pt\n"),
            "config file $FILE: duplicate key 'models[0].path' (line 4)");
  EXPECT_EQ(FileError("models:\n  - name: a\n    path: /m/a.pt\n  - name: b\n    path: /m/b.pt\n"
                      "models: []\n"),
            "config file $FILE: duplicate key 'models' (line 6)");
}

// A bug when it fails: the second `name` is taken silently when the first one is "".
TEST(ConfigModelListTest, DuplicateKeysInAnEntryAfterAnEmptyValue) {
  EXPECT_EQ(FileError("models:\n  - name: \"\"\n    path: /m/a.pt\n    name: b\n"),
            "config file $FILE: duplicate key 'models[0].name' (line 4)");
  EXPECT_EQ(FileError("models:\n  - name: a\n    path: ''\n    path: /m/b.pt\n"),
            "config file $FILE: duplicate key 'models[0].path' (line 4)");
}

TEST(ConfigModelListTest, PerModelValuesOutOfRangeNameEntryKeyAndLine) {
  const auto second = [](const std::string& key_line) {
    return absl::StrCat("models:\n  - name: a\n    path: /m/a.pt\n  - name: b\n    path: /m/b.pt\n",
                        "    ", key_line, "\n");
  };
  EXPECT_EQ(FileError(second("max_batch_size: 0")),
            "config file $FILE: models[1] (b): models[1].max_batch_size must be between 1 and "
            "1024, got 0 (line 6)");
  // The entry's own error only: an entry with invalid values is not counted in the sum.
  EXPECT_EQ(FileError(second("instances_per_device: 65")),
            "config file $FILE: models[1] (b): models[1].instances_per_device must be between 1 "
            "and 64, got 65 (line 6)");
  EXPECT_EQ(FileError(second("intra_op_threads: -1")),
            "config file $FILE: models[1] (b): models[1].intra_op_threads must be between 0 and "
            "1024, got -1 (line 6)");
  EXPECT_EQ(FileError(second("compute_dtype: fp8")),
            "config file $FILE: models[1] (b): models[1].compute_dtype must be one of export, "
            "auto, float32, bfloat16, float16; got 'fp8' (line 6)");
  EXPECT_EQ(FileError(second("devices: [gpu]")),
            "config file $FILE: models[1] (b): models[1].devices[0] must be cpu, cuda or cuda:N, "
            "got 'gpu' (line 6)");
  EXPECT_EQ(FileError(second("devices: []")),
            "config file $FILE: models[1] (b): models[1].devices must name at least one device "
            "(line 6)");
  EXPECT_EQ(FileError(second("max_queue_delay_ms: 20000")),
            "config file $FILE: models[1] (b): models[1].max_queue_delay_ms must be between 0 "
            "and 10000, got 20000 (line 6)");
  EXPECT_EQ(FileError(second("max_queue_size: 0")),
            "config file $FILE: models[1] (b): models[1].max_queue_size must be between 1 and "
            "1000000, got 0 (line 6)");
  EXPECT_EQ(FileError(second("max_batch_pixels: -1")),
            "config file $FILE: models[1] (b): models[1].max_batch_pixels must be between 0 and "
            "1099511627776, got -1 (line 6)");
  // Checked against the max_batch_size that applies to the entry (here the top level's 8).
  EXPECT_EQ(FileError(second("preferred_batch_sizes: [4, 16]")),
            "config file $FILE: models[1] (b): models[1].preferred_batch_sizes[1] must be "
            "between 1 and batching.max_batch_size (8), got 16 (line 6)");
  // Type errors are found while reading the entry.
  EXPECT_EQ(FileError(second("max_batch_size: big")),
            "config file $FILE: models[1].max_batch_size must be an integer, got 'big' (line 6)");
  EXPECT_EQ(FileError(second("devices: cpu")),
            "config file $FILE: models[1].devices must be a list of strings, got 'cpu' (line 6)");
}

TEST(ConfigModelListTest, EveryBadEntryIsReportedOnItsOwnLine) {
  const std::string error = FileError(
      "models:\n"
      "  - name: a\n"
      "    path: /m/a.pt\n"
      "    max_batch_size: 0\n"
      "  - name: a\n"
      "  - name: c/d\n"
      "    path: /m/c.pt\n"
      "    compute_dtype: int4\n");
  EXPECT_EQ(error,
            "config file $FILE: models[0] (a): models[0].max_batch_size must be between 1 and "
            "1024, got 0 (line 4)\n"
            "config file $FILE: models[1].name 'a' is also models[0] (a)'s: names must be unique "
            "(line 5)\n"
            "config file $FILE: models[1] (a): models[1].path is required (the model's export) "
            "(line 5)\n"
            "config file $FILE: models[2] (c/d): models[2].name must be 1 to 64 letters, "
            "digits, '-', '_' or '.' (not . or ..), got 'c/d' (line 6)\n"
            "config file $FILE: models[2] (c/d): models[2].compute_dtype must be one of export, "
            "auto, float32, bfloat16, float16; got 'int4' (line 8)");
}

TEST(ConfigModelListTest, ModelPathTogetherWithModels) {
  const std::string list = "models:\n  - name: a\n    path: /m/a.pt\n";
  const std::string message =
      "model.path and models are both set: give one model in model.path, or list every model "
      "in models";
  EXPECT_EQ(FileError("model:\n  path: /m/x.pt\n" + list),
            absl::StrCat("config file $FILE: ", message, " (line 2)"));
  EXPECT_EQ(FileError(list, {.env = {{"DINOV3_MODEL_PATH", "/m/x.pt"}}}),
            absl::StrCat("environment DINOV3_MODEL_PATH: ", message));
  EXPECT_EQ(FileError(list, {.overrides = {{"model.path", "/m/x.pt", "--model"}}}),
            absl::StrCat("--model: ", message));
  // Also when required keys are not checked (--print_config).
  EXPECT_EQ(FileError("model:\n  path: /m/x.pt\n" + list, {}, kNoModel),
            absl::StrCat("config file $FILE: ", message, " (line 2)"));
}

TEST(ConfigModelListTest, ModelNameTogetherWithModels) {
  const std::string list = "models:\n  - name: a\n    path: /m/a.pt\n";
  EXPECT_EQ(FileError("model:\n  name: a\n" + list),
            "config file $FILE: model.name names model.path's model; entries of models have a "
            "name each (line 2)");
  EXPECT_EQ(FileError(list, {.env = {{"DINOV3_MODEL_NAME", "a"}}}),
            "environment DINOV3_MODEL_NAME: model.name names model.path's model; entries of "
            "models have a name each");
}

TEST(ConfigModelListTest, DefaultModelMustBeAServedModel) {
  EXPECT_EQ(FileError("model:\n"
                      "  default_model: vitb16\n"
                      "models:\n"
                      "  - name: a\n"
                      "    path: /m/a.pt\n"
                      "  - name: b\n"
                      "    path: /m/b.pt\n"),
            "config file $FILE: model.default_model 'vitb16' is not a served model (a, b) "
            "(line 2)");
  EXPECT_EQ(FileError("model:\n  path: /m/vits16.pt\n  default_model: x\n"),
            "config file $FILE: model.default_model 'x' is not a served model (vits16) (line 3)");
  EXPECT_EQ(FileError("model:\n  path: /m/vits16.pt\n  name: small\n",
                      {.env = {{"DINOV3_MODEL_DEFAULT_MODEL", "vits16"}}}),
            "environment DINOV3_MODEL_DEFAULT_MODEL: model.default_model 'vits16' is not a "
            "served model (small)");
}

constexpr char kCrowdedCuda0[] =
    "models:\n"
    "  - name: a\n"
    "    path: /m/a.pt\n"
    "    devices: [cuda]\n"
    "    instances_per_device: 40\n"
    "  - name: b\n"
    "    path: /m/b.pt\n"
    "    devices: [cuda:0, cpu]\n"
    "    instances_per_device: 30\n";

TEST(ConfigModelListTest, AtMost64InstancesOfAllModelsOnOneDevice) {
  // cuda is cuda:0: 40 + 30 instances there; cpu holds only b's 30.
  const std::string error = FileError(kCrowdedCuda0);
  EXPECT_THAT(error, HasSubstr("models: 70 instances on cuda:0 in all, more than 64; lower "
                               "instances_per_device"));
  EXPECT_THAT(error, Not(HasSubstr(" on cpu")));
  EXPECT_THAT(error, Not(HasSubstr("\n")));  // one error
  // Inherited instances count too: 2 x 33 on the top level's cpu.
  EXPECT_THAT(FileError("model:\n  instances_per_device: 33\nmodels:\n  - name: a\n"
                        "    path: /m/a.pt\n  - name: b\n    path: /m/b.pt\n"),
              HasSubstr("models: 66 instances on cpu in all, more than 64"));
  // 64 in all is allowed; so is 64 on each of two devices.
  EXPECT_EQ(FileError("model:\n  instances_per_device: 32\nmodels:\n  - name: a\n"
                      "    path: /m/a.pt\n  - name: b\n    path: /m/b.pt\n"),
            "OK");
  EXPECT_EQ(FileError("models:\n  - name: a\n    path: /m/a.pt\n    devices: [cuda:0, cuda:1]\n"
                      "    instances_per_device: 64\n  - name: b\n    path: /m/b.pt\n"
                      "    devices: [cpu]\n    instances_per_device: 64\n"),
            "OK");
}

// A bug when it fails: the error has no file and line, as "models" has no recorded origin.
TEST(ConfigModelListTest, TooManyInstancesErrorNamesTheFileAndLine) {
  EXPECT_EQ(FileError(kCrowdedCuda0),
            "config file $FILE: models: 70 instances on cuda:0 in all, more than 64; lower "
            "instances_per_device (line 1)");
}

TEST(ConfigModelListTest, ModelsMustBeAListOfMappings) {
  EXPECT_EQ(FileError("models: /m/a.pt\n"),
            "config file $FILE: models must be a list of models (- name: ..., path: ...) "
            "(line 1)");
  EXPECT_EQ(FileError("model:\n  path: /m/x.pt\nmodels:\n  name: a\n  path: /m/a.pt\n"),
            "config file $FILE: models must be a list of models (- name: ..., path: ...) "
            "(line 4)");
  EXPECT_EQ(FileError("models:\n  - name: a\n    path: /m/a.pt\n  - /m/b.pt\n"),
            "config file $FILE: models[1] must be a mapping (name, path, ...) (line 4)");
  EXPECT_EQ(FileError("models:\n  - [a, /m/a.pt]\n"),
            "config file $FILE: models[0] must be a mapping (name, path, ...) (line 2)");
  // `models:` with no value sets nothing.
  EXPECT_EQ(FileError("model:\n  path: /m/x.pt\nmodels:\n"), "OK");
}

// --- Printing --------------------------------------------------------------------------------

// LoadConfig(ToYaml(config)), or the error with the YAML.
ServerConfig RoundTrip(const ServerConfig& config) {
  const std::string yaml = ToYaml(config);
  absl::StatusOr<ServerConfig> loaded = LoadConfig({.file = WriteTempFile(yaml)});
  EXPECT_TRUE(loaded.ok()) << loaded.status() << "\n" << yaml;
  return loaded.ok() ? *loaded : ServerConfig{};
}

TEST(ConfigModelListTest, ToYamlRoundTripsAModelsList) {
  const ServerConfig loaded =
      LoadYaml(kTwoModels, {.env = {{"DINOV3_MODEL_DEFAULT_MODEL", "vitl16"}}});
  EXPECT_EQ(RoundTrip(loaded), loaded);

  // Built in code: names a YAML reader could take for numbers, booleans or null stay strings.
  ServerConfig config = ::dinov3::config::testing::ConfigA();
  config.model.path = "";
  config.model.name = "";  // model.name is for model.path only
  config.model.default_model = "null";
  ModelEntry own = Entry("123", "/m/my model #1: yes.pt");
  own.model.devices = {"cuda:1", "cpu"};
  own.model.intra_op_threads = 2;
  own.batching.max_batch_size = 4;
  own.batching.preferred_batch_sizes = {2, 4};
  own.batching.max_queue_delay_ms = 0.125;
  own.keys_set = {"batching.max_batch_size", "model.devices", "batching.preferred_batch_sizes",
                  "model.intra_op_threads", "batching.max_queue_delay_ms"};
  config.models = {own,
                   Entry("true", "123"),
                   Entry("null", "null"),
                   Entry("1e3", "/m/1e3.pt"),
                   Entry("-", "/m/dash.pt"),
                   Entry("x.y_z-1", "'quoted'")};
  const std::string yaml = ToYaml(config);
  EXPECT_THAT(yaml, HasSubstr("\nmodels:\n  - name: \"123\"\n"));
  EXPECT_EQ(RoundTrip(config), config);
  EXPECT_EQ(DefaultModel(config), "null");
}

TEST(ConfigModelListTest, ToYamlRoundTripsAnEmptyList) {
  const ServerConfig config = ::dinov3::config::testing::ConfigA();
  const std::string yaml = ToYaml(config);
  EXPECT_THAT(yaml, HasSubstr("\nmodels: []\n"));
  EXPECT_EQ(RoundTrip(config), config);
  ServerConfig defaults;
  defaults.model.path = "/m/x.pt";
  EXPECT_EQ(RoundTrip(defaults), defaults);
}

TEST(ConfigModelListTest, SummaryListsTheModels) {
  const std::string summary = Summary(LoadYaml(kTwoModels));
  EXPECT_THAT(summary, HasSubstr(" models=vits16:/m/vits16.pt,vitl16:/m/vitl16.pt"));
  EXPECT_THAT(summary, Not(HasSubstr("\n")));
  ServerConfig single;
  single.model.path = "/m/dinov3-vits16.pt";
  EXPECT_THAT(Summary(single), HasSubstr(" models=dinov3-vits16:/m/dinov3-vits16.pt"));
  single.model.name = "small";
  EXPECT_THAT(Summary(single), HasSubstr(" models=small:/m/dinov3-vits16.pt"));
}

}  // namespace
}  // namespace dinov3::config
