// Shared pieces of the integration tests: a gtest fixture that runs one dinov3-server per test
// suite (ServerProcess, configured from the environment CTest sets), gRPC stubs for it, and
// deterministic test images (raw RGB8 and the same pixels as a 24-bit BMP file).
//
// No std::filesystem here: the CUDA LibTorch (libtorch.so) exports broken copies of some of its
// functions (remove_all crashes), and the test binary links LibTorch.
//
// Environment: DINOV3_SERVER_BIN (dinov3-server), DINOV3_TEST_MODEL (a DINOv3 export),
// DINOV3_CLIENT_BIN (dinov3-client; default: next to the server binary).
#ifndef DINOV3_TESTS_INTEGRATION_TEST_SUPPORT_H_
#define DINOV3_TESTS_INTEGRATION_TEST_SUPPORT_H_

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "dinov3/v1/embedding.grpc.pb.h"
#include "tests/integration/server_process.h"

namespace dinov3::integration {

// Packed RGB8 pixels, row-major, no padding.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::string pixels;  // width * height * 3 bytes
};

// Uniformly random pixels from a fixed seed.
RgbImage RandomRgbImage(int width, int height, uint32_t seed);

// `image` as a RawImage proto (format RGB8).
v1::Image ToRawProto(const RgbImage& image, const std::string& id);

// `image` as an uncompressed 24-bit BMP file (BITMAPINFOHEADER, bottom-up rows, BGR).
std::string EncodeBmp(const RgbImage& image);

// Writes `bytes` to `path`; false on failure.
bool WriteFile(const std::string& path, const std::string& bytes);

// A new empty directory under ::testing::TempDir(); "" on failure.
std::string MakeTempDir(const std::string& prefix);
// Deletes `dir` and everything below it (symbolic links are not followed).
void RemoveTree(const std::string& dir);

// Runs `command` through the shell; returns its exit status (-1 if it did not exit) and
// stores what it wrote to stdout in `output`.
int RunCommand(const std::string& command, std::string& output);

// One dinov3-server for all tests of a suite. A test fails at once (with the reason, the
// server's log tail included) when the server could not be started.
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;

  static const std::string& address() { return server_->address(); }
  static std::unique_ptr<v1::EmbeddingService::Stub> NewStub();
  static std::string ModelPath() { return GetEnv("DINOV3_TEST_MODEL"); }
  static std::string ClientBinary();

 private:
  static inline std::unique_ptr<ServerProcess> server_;
  static inline std::string start_error_;
};

}  // namespace dinov3::integration

#endif  // DINOV3_TESTS_INTEGRATION_TEST_SUPPORT_H_
