// Tests of server/preprocess/opencv_limits: the environment it sets, and that OpenCV itself then
// refuses images above the limits. OpenCV 4.6 reads the limits when the process starts, so the
// decoding is observed in fresh processes of opencv_limits_probe (DINOV3_OPENCV_LIMITS_PROBE).
#include "server/preprocess/opencv_limits.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace dinov3::preprocess {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

ImageLimits SmallLimits() {
  ImageLimits limits;
  limits.max_pixels = 10'000;
  limits.min_image_side = 8;
  return limits;
}

// This process's environment without OpenCV's variables, plus `extra` ("NAME=value").
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "OPENCV_")) env.emplace_back(*e);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Runs the probe with `args` and `env`; returns its stdout, and fails the test unless it exits 0.
std::string RunProbe(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> argv_strings = {DINOV3_OPENCV_LIMITS_PROBE};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv, envp;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_copy = env;
  for (std::string& s : env_copy) envp.push_back(s.data());
  envp.push_back(nullptr);

  int fds[2];
  if (pipe(fds) != 0) {
    ADD_FAILURE() << "pipe failed";
    return "";
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  std::string output;
  char buffer[4096];
  for (ssize_t n; rc == 0 && (n = read(fds[0], buffer, sizeof(buffer))) > 0;)
    output.append(buffer, n);
  close(fds[0]);
  if (rc != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << " failed: " << rc;
    return "";
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "probe status " << status;
  return output;
}

std::vector<std::string> Environment(const ImageLimits& limits) {
  std::vector<std::string> env;
  for (const auto& [name, value] : OpenCvDecoderEnvironment(limits)) {
    env.push_back(name + "=" + value);
  }
  return env;
}

TEST(OpenCvDecoderEnvironmentTest, LimitsPixelsSidesAndOptionalCodecs) {
  EXPECT_THAT(
      OpenCvDecoderEnvironment(SmallLimits()),
      ElementsAre(Pair("OPENCV_IO_MAX_IMAGE_PIXELS", "10000"),
                  Pair("OPENCV_IO_MAX_IMAGE_WIDTH", "1250"),  // 10000 / 8
                  Pair("OPENCV_IO_MAX_IMAGE_HEIGHT", "1250"), Pair("OPENCV_IO_ENABLE_OPENEXR", "0"),
                  Pair("OPENCV_IO_ENABLE_JASPER", "0")));
}

TEST(OpenCvDecoderEnvironmentTest, SidesNeverAboveOpenCvsDefault) {
  const ImageLimits defaults;  // 40M pixels / 8 = 5M, above OpenCV's 2^20
  EXPECT_THAT(OpenCvDecoderEnvironment(defaults),
              testing::Contains(Pair("OPENCV_IO_MAX_IMAGE_WIDTH", "1048576")));
}

TEST(OpenCvLimitsTest, StartedWithTheEnvironmentOpenCvRefusesLargerImages) {
  const std::string out =
      RunProbe({"10000", "8", "100x100", "101x100", "100x101", "1251x7", "1250x8", "8x1251"},
               ChildEnvironment(Environment(SmallLimits())));
  EXPECT_THAT(out, HasSubstr("apply: OK\n"));
  EXPECT_THAT(out, HasSubstr("decode 100x100: ok\n"));       // exactly max_pixels
  EXPECT_THAT(out, HasSubstr("decode 101x100: refused\n"));  // one row or column more
  EXPECT_THAT(out, HasSubstr("decode 100x101: refused\n"));
  EXPECT_THAT(out, HasSubstr("decode 1251x7: refused\n"));  // 8757 pixels, but too wide
  EXPECT_THAT(out, HasSubstr("decode 1250x8: ok\n"));
  EXPECT_THAT(out, HasSubstr("decode 8x1251: refused\n"));  // too high
}

TEST(OpenCvLimitsTest, AppliedTooLateTheCallSaysSoAndOpenCvStillDecodes) {
  // Started without the environment: setting it now is too late for OpenCV 4.6, and the status
  // must say so. Whatever the OpenCV version, the status must match what imdecode does.
  const std::string out = RunProbe({"10000", "8", "101x100"}, ChildEnvironment({}));
  if (absl::StrContains(out, "apply: OK\n")) {
    EXPECT_THAT(out, HasSubstr("decode 101x100: refused\n"));
  } else {
    EXPECT_THAT(out, HasSubstr("apply: FAILED_PRECONDITION\n"));
    EXPECT_THAT(out, HasSubstr("decode 101x100: ok\n"));
  }
}

TEST(OpenCvLimitsTest, ReexecutingAfterTheCallPutsTheLimitsInForce) {
  // What main() does on FAILED_PRECONDITION: execv itself once; the environment is set by then.
  const std::string out =
      RunProbe({"--reexec", "10000", "8", "100x100", "101x100"}, ChildEnvironment({}));
  EXPECT_THAT(out, HasSubstr("apply: OK\n"));
  EXPECT_THAT(out, HasSubstr("decode 100x100: ok\n"));
  EXPECT_THAT(out, HasSubstr("decode 101x100: refused\n"));
}

TEST(OpenCvLimitsTest, OutOfRangeLimitCannotBeChecked) {
  ImageLimits limits;
  limits.max_pixels = int64_t{1} << 28;
  EXPECT_EQ(ApplyOpenCvDecoderLimits(limits).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(OpenCvEnforcesPixelLimit(0));
}

}  // namespace
}  // namespace dinov3::preprocess
