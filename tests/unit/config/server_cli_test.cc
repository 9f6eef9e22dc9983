// dinov3-server's command line: --print_config shows the effective configuration (flag >
// environment > config file > default) without needing a model; bad configuration exits 2
// with the error on stderr. Runs the real binary (DINOV3_SERVER_BIN) with a clean DINOV3_*
// environment; nothing here starts serving.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/unit/config/config_test_util.h"

extern char** environ;

namespace dinov3::config {
namespace {

using ::dinov3::config::testing::WriteTempFile;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `dinov3-server args...` with the DINOV3_* variables of this process removed and `env`
// ("NAME=value") added.
Result RunServer(const std::vector<std::string>& env, const std::vector<std::string>& args) {
  auto quote = [](const std::string& s) { return absl::StrCat("'", s, "'"); };
  const std::string err_path = WriteTempFile("");
  std::string command = "env";
  for (char** variable = environ; *variable != nullptr; ++variable) {
    const std::string entry = *variable;
    if (absl::StartsWith(entry, "DINOV3_")) {
      absl::StrAppend(&command, " -u ", entry.substr(0, entry.find('=')));
    }
  }
  for (const std::string& e : env) absl::StrAppend(&command, " ", quote(e));
  absl::StrAppend(&command, " ", quote(DINOV3_SERVER_BIN));
  for (const std::string& a : args) absl::StrAppend(&command, " ", quote(a));
  absl::StrAppend(&command, " 2>", quote(err_path), " </dev/null");

  Result result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;)
    result.out.append(buffer, n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream err;
  err << std::ifstream(err_path).rdbuf();
  result.err = err.str();
  return result;
}

TEST(ConfigServerCliTest, PrintConfigShowsFlagOverEnvOverFileOverDefault) {
  const std::string file = WriteTempFile(
      "batching:\n  max_batch_size: 4\n  max_queue_size: 100\n  preferred_batch_sizes: [2]\n"
      "logging:\n  level: debug\n");
  Result r =
      RunServer({"DINOV3_BATCHING_MAX_BATCH_SIZE=16", "DINOV3_BATCHING_MAX_QUEUE_SIZE=50",
                 "DINOV3_PORT=tcp://10.0.0.1:50051", "DINOV3_ENGINE_TEST_DEVICE=cuda"},
                {"--config=" + file, "--max_batch_size=32", "--device=cuda:1", "--print_config"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  YAML::Node printed = YAML::Load(r.out);
  EXPECT_EQ(printed["batching"]["max_batch_size"].as<int>(), 32);           // flag
  EXPECT_EQ(printed["batching"]["max_queue_size"].as<int>(), 50);           // environment
  EXPECT_EQ(printed["logging"]["level"].as<std::string>(), "debug");        // file
  EXPECT_EQ(printed["batching"]["preferred_batch_sizes"][0].as<int>(), 2);  // file
  EXPECT_EQ(printed["limits"]["max_patches"].as<int>(), 4096);              // default
  EXPECT_EQ(printed["model"]["devices"][0].as<std::string>(), "cuda:1");
  EXPECT_EQ(printed["model"]["path"].as<std::string>(), "");  // no model needed to print
}

TEST(ConfigServerCliTest, ConfigFileFromEnvironmentAndLegacyListFlags) {
  const std::string file = WriteTempFile("model:\n  path: /models/from-file.pt\n");
  Result r = RunServer({"DINOV3_CONFIG=" + file},
                       {"--print_config", "--device=cpu", "--devices=cuda:0,cuda:1",
                        "--max_batch_size=16", "--preferred_batch_sizes=4,8"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  YAML::Node printed = YAML::Load(r.out);
  EXPECT_EQ(printed["model"]["path"].as<std::string>(), "/models/from-file.pt");
  EXPECT_EQ(printed["model"]["devices"].as<std::vector<std::string>>(),
            (std::vector<std::string>{"cuda:0", "cuda:1"}));  // --devices wins over --device
  EXPECT_EQ(printed["batching"]["preferred_batch_sizes"].as<std::vector<int>>(),
            (std::vector<int>{4, 8}));
}

TEST(ConfigServerCliTest, PrintedConfigLoadsBack) {
  Result first = RunServer({}, {"--print_config", "--model=/m.pt", "--log_format=json",
                                "--metrics_enabled=false", "--max_queue_delay_ms=0.25"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  Result second = RunServer({}, {"--print_config", "--config=" + WriteTempFile(first.out)});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);
}

TEST(ConfigServerCliTest, InvalidFlagExitsTwoNamingTheKey) {
  for (const bool print : {true, false}) {
    std::vector<std::string> args = {"--model=/m.pt", "--max_batch_size=0"};
    if (print) args.push_back("--print_config");
    Result r = RunServer({}, args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr("--max_batch_size: batching.max_batch_size must be between 1 "
                                 "and 1024, got 0"));
    EXPECT_THAT(r.out, IsEmpty());
  }
}

TEST(ConfigServerCliTest, HttpFlagsAndThePlaintextRuleOnHttpListen) {
  Result exposed = RunServer({}, {"--print_config", "--http_listen=0.0.0.0:8080"});
  EXPECT_EQ(exposed.exit_code, 2);
  EXPECT_THAT(exposed.err, HasSubstr("http.listen 0.0.0.0:8080 is not a loopback address and TLS "
                                     "is off"));
  EXPECT_THAT(exposed.out, IsEmpty());
  Result off = RunServer({"DINOV3_HTTP_MAX_JSON_DEPTH=8"},
                         {"--print_config", "--http_listen=0.0.0.0:8080", "--http_enabled=false"});
  ASSERT_EQ(off.exit_code, 0) << off.err;
  YAML::Node printed = YAML::Load(off.out);
  EXPECT_FALSE(printed["http"]["enabled"].as<bool>());
  EXPECT_EQ(printed["http"]["listen"].as<std::string>(), "0.0.0.0:8080");
  EXPECT_EQ(printed["http"]["max_json_depth"].as<int>(), 8);
}

TEST(ConfigServerCliTest, ConfigErrorsExitTwo) {
  Result no_model = RunServer({}, {});
  EXPECT_EQ(no_model.exit_code, 2);
  EXPECT_THAT(no_model.err, HasSubstr("model.path is required"));

  Result env = RunServer({"DINOV3_LOGGING_LEVEL=loud"}, {"--model=/m.pt"});
  EXPECT_EQ(env.exit_code, 2);
  EXPECT_THAT(env.err, HasSubstr("environment DINOV3_LOGGING_LEVEL: logging.level must be one "
                                 "of"));

  const std::string file = WriteTempFile("batching:\n  max_batch_sise: 4\n");
  Result unknown = RunServer({}, {"--print_config", "--config=" + file});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("config file " + file +
                                     ": unknown key "
                                     "'batching.max_batch_sise'; did you mean "
                                     "'batching.max_batch_size'? (line 2)"));

  Result positional = RunServer({}, {"--model=/m.pt", "extra"});
  EXPECT_EQ(positional.exit_code, 2);
  EXPECT_THAT(positional.err, HasSubstr("unexpected argument 'extra'"));
}

}  // namespace
}  // namespace dinov3::config
