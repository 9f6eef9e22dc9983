// Shared pieces of the integration tests; see test_support.h.
#include "tests/integration/test_support.h"

#include <ftw.h>
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"

namespace dinov3::integration {
namespace {

void AppendLe(std::string& out, uint32_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

}  // namespace

RgbImage RandomRgbImage(int width, int height, uint32_t seed) {
  RgbImage image{width, height, std::string(static_cast<size_t>(width) * height * 3, '\0')};
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  for (char& c : image.pixels) c = static_cast<char>(byte(rng));
  return image;
}

v1::Image ToRawProto(const RgbImage& image, const std::string& id) {
  v1::Image proto;
  proto.set_id(id);
  v1::RawImage* raw = proto.mutable_raw();
  raw->set_width(image.width);
  raw->set_height(image.height);
  raw->set_format(v1::RGB8);
  raw->set_data(image.pixels);
  return proto;
}

std::string EncodeBmp(const RgbImage& image) {
  const uint32_t row_bytes = (static_cast<uint32_t>(image.width) * 3 + 3) & ~3u;
  const uint32_t data_bytes = row_bytes * image.height;
  std::string bmp = "BM";
  AppendLe(bmp, 14 + 40 + data_bytes, 4);  // file size
  AppendLe(bmp, 0, 4);                     // reserved
  AppendLe(bmp, 14 + 40, 4);               // pixel data offset
  AppendLe(bmp, 40, 4);                    // BITMAPINFOHEADER
  AppendLe(bmp, image.width, 4);
  AppendLe(bmp, image.height, 4);  // positive: bottom-up
  AppendLe(bmp, 1, 2);             // planes
  AppendLe(bmp, 24, 2);            // bits per pixel
  AppendLe(bmp, 0, 4);             // BI_RGB
  AppendLe(bmp, data_bytes, 4);
  AppendLe(bmp, 2835, 4);  // 72 dpi
  AppendLe(bmp, 2835, 4);
  AppendLe(bmp, 0, 4);  // palette colours
  AppendLe(bmp, 0, 4);  // important colours
  for (int y = image.height - 1; y >= 0; --y) {
    const char* row = image.pixels.data() + static_cast<size_t>(y) * image.width * 3;
    for (int x = 0; x < image.width; ++x) {
      bmp.push_back(row[3 * x + 2]);
      bmp.push_back(row[3 * x + 1]);
      bmp.push_back(row[3 * x]);
    }
    bmp.append(row_bytes - image.width * 3, '\0');
  }
  return bmp;
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

std::string MakeTempDir(const std::string& prefix) {
  std::string path = absl::StrCat(::testing::TempDir(), prefix, "-XXXXXX");
  return ::mkdtemp(path.data()) == nullptr ? "" : path;
}

void RemoveTree(const std::string& dir) {
  if (dir.empty()) return;
  ::nftw(
      dir.c_str(),
      [](const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

int RunCommand(const std::string& command, std::string& output) {
  output.clear();
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void ServerTest::SetUpTestSuite() {
  ServerProcessOptions options;
  options.binary = GetEnv("DINOV3_SERVER_BIN");
  options.model = ModelPath();
  options.log_path = absl::StrCat(::testing::TempDir(), "dinov3-server-", ::getpid(), ".log");
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(options);
  if (server.ok()) {
    server_ = *std::move(server);
    start_error_.clear();
  } else {
    start_error_ = std::string(server.status().message());
  }
}

void ServerTest::TearDownTestSuite() {
  if (server_ == nullptr) return;
  const std::string exit = server_->Stop();
  // The server drains and returns 0 on SIGTERM (server/main.cc).
  EXPECT_EQ(exit, "exit 0") << "dinov3-server did not shut down cleanly on SIGTERM; log "
                            << server_->log_path() << " ends with:\n"
                            << server_->LogTail();
  server_.reset();
}

void ServerTest::SetUp() {
  ASSERT_NE(server_, nullptr) << "could not start dinov3-server: " << start_error_;
}

std::unique_ptr<v1::EmbeddingService::Stub> ServerTest::NewStub() {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return v1::EmbeddingService::NewStub(
      grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), args));
}

std::string ServerTest::ClientBinary() {
  std::string client = GetEnv("DINOV3_CLIENT_BIN");
  if (client.empty()) {
    const std::string server = GetEnv("DINOV3_SERVER_BIN");
    const size_t slash = server.rfind('/');
    client =
        absl::StrCat(slash == std::string::npos ? "." : server.substr(0, slash), "/dinov3-client");
  }
  return client;
}

}  // namespace dinov3::integration
