// dinov3-client against a running dinov3-server: info, health, embed (json and npy), dense,
// and the exit statuses of errors. Results are compared with direct gRPC calls.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cpp/tensor_decode.h"
#include "nlohmann/json.hpp"
#include "tests/integration/test_support.h"

namespace dinov3::integration {
namespace {

using ::testing::HasSubstr;

constexpr int kSide = 224;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

struct Npy {
  std::string header;  // the dict text
  std::string data;
};

// Splits a .npy v1.0 file; fails the test on a malformed preamble.
Npy ParseNpy(const std::string& bytes) {
  Npy npy;
  EXPECT_GE(bytes.size(), 10u);
  if (bytes.size() < 10) return npy;
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len =
      static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u) << "data not 64-byte aligned";
  EXPECT_LE(10 + header_len, bytes.size());
  npy.header = bytes.substr(10, header_len);
  EXPECT_EQ(npy.header.back(), '\n');
  npy.data = bytes.substr(std::min(bytes.size(), 10 + header_len));
  return npy;
}

class ClientCliTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (HasFatalFailure()) return;  // no server: nothing below may touch it
    dir_ = MakeTempDir("dinov3-cli");
    ASSERT_FALSE(dir_.empty()) << "cannot create a temporary directory";
    image_ = RandomRgbImage(kSide, kSide, 42);
    image_path_ = dir_ + "/photo.bmp";
    ASSERT_TRUE(WriteFile(image_path_, EncodeBmp(image_)));
  }
  void TearDown() override { RemoveTree(dir_); }

  // Runs dinov3-client with `args` against the server; stderr is merged into `output`.
  int Client(const std::string& args, std::string& output) {
    return RunCommand(
        absl::StrCat("'", ClientBinary(), "' --server=", address(), " ", args, " 2>&1"), output);
  }

  // Direct Embed of the same pixels as a raw image, for comparison.
  v1::Embedding DirectEmbed(std::vector<v1::Output> outputs) {
    v1::EmbedRequest request;
    *request.add_images() = ToRawProto(image_, "photo.bmp");
    for (const v1::Output output : outputs) request.add_outputs(output);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    v1::EmbedResponse response;
    const grpc::Status status = NewStub()->Embed(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.embeddings_size() == 1 ? response.embeddings(0) : v1::Embedding();
  }

  std::string dir_;
  RgbImage image_;
  std::string image_path_;
};

TEST_F(ClientCliTest, InfoPrintsModelInfo) {
  grpc::ClientContext context;
  v1::ModelInfo info;
  ASSERT_TRUE(NewStub()->GetModelInfo(&context, v1::GetModelInfoRequest(), &info).ok());
  std::string output;
  ASSERT_EQ(Client("info", output), 0) << output;
  EXPECT_THAT(output, HasSubstr(absl::StrCat("variant: \"", info.variant(), "\"")));
  EXPECT_THAT(output, HasSubstr(absl::StrCat("embed_dim: ", info.embed_dim())));
  EXPECT_THAT(output, HasSubstr("limits {"));
}

TEST_F(ClientCliTest, HealthPrintsServing) {
  std::string output;
  EXPECT_EQ(Client("health", output), 0) << output;
  EXPECT_EQ(output, "SERVING\n");
}

TEST_F(ClientCliTest, EmbedJsonMatchesDirectCall) {
  const v1::Embedding want = DirectEmbed({v1::CLS, v1::POOLED, v1::PATCH_TOKENS});
  std::string output;
  ASSERT_EQ(
      Client(absl::StrCat("embed '", image_path_, "' --outputs=cls,pooled,patch_tokens"), output),
      0)
      << output.substr(0, 2000);
  ASSERT_FALSE(output.empty());
  EXPECT_EQ(output.find('\n'), output.size() - 1) << "expected exactly one JSON line";
  const nlohmann::json json = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(json.is_object()) << output.substr(0, 2000);
  EXPECT_EQ(json["id"], "photo.bmp");
  EXPECT_EQ(json["grid"], nlohmann::json::array({want.grid_height(), want.grid_width()}));
  for (const auto& [name, tensor] : {std::pair{"cls", &want.cls()},
                                     {"pooled", &want.pooled()},
                                     {"patch_tokens", &want.patch_tokens()}}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(json.contains(name));
    const auto values = client::DecodeTensor(*tensor);
    ASSERT_TRUE(values.ok()) << values.status();
    std::vector<float> got;
    if (tensor->shape_size() == 1) {
      got = json[name].get<std::vector<float>>();
    } else {
      ASSERT_EQ(json[name].size(), static_cast<size_t>(tensor->shape(0)));
      for (const auto& row : json[name]) {
        ASSERT_EQ(row.size(), static_cast<size_t>(tensor->shape(1)));
        for (const auto& v : row) got.push_back(v.get<float>());
      }
    }
    ASSERT_EQ(got.size(), values->size());
    double max_diff = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(got[i] - (*values)[i])));
    }
    EXPECT_LE(max_diff, 1e-5);  // BMP decodes to the same pixels as the raw image
  }
}

TEST_F(ClientCliTest, EmbedNpyWritesFloat16Files) {
  const std::string out_dir = dir_ + "/npy";
  std::string output;
  ASSERT_EQ(Client(absl::StrCat("embed '", image_path_, "' --format=npy --out='", out_dir,
                                "' --dtype=float16 --outputs=cls,patch_tokens"),
                   output),
            0)
      << output;
  const v1::Embedding want = DirectEmbed({v1::CLS});
  const int64_t dim = want.cls().shape(0);
  const Npy cls = ParseNpy(ReadFile(out_dir + "/photo.bmp.cls.npy"));
  EXPECT_THAT(cls.header, HasSubstr("'descr': '<f2'"));
  EXPECT_THAT(cls.header, HasSubstr("'fortran_order': False"));
  EXPECT_THAT(cls.header, HasSubstr(absl::StrCat("'shape': (", dim, ",)")));
  ASSERT_EQ(cls.data.size(), static_cast<size_t>(dim) * 2);
  const std::vector<float> cls32 = *client::DecodeTensor(want.cls());
  const std::vector<float> cls16 = client::DecodeElements(v1::FLOAT16, cls.data.data(), dim);
  for (int64_t i = 0; i < dim; ++i) EXPECT_NEAR(cls16[i], cls32[i], 1e-2) << "element " << i;
  const Npy patches = ParseNpy(ReadFile(out_dir + "/photo.bmp.patch_tokens.npy"));
  const int64_t tokens = int64_t{want.grid_height()} * want.grid_width();
  EXPECT_THAT(patches.header, HasSubstr(absl::StrCat("'shape': (", tokens, ", ", dim, ")")));
  EXPECT_EQ(patches.data.size(), static_cast<size_t>(tokens * dim * 2));
}

TEST_F(ClientCliTest, DenseWritesTheEmbedPatchGrid) {
  const v1::Embedding want = DirectEmbed({v1::PATCH_TOKENS});
  const std::string out = dir_ + "/dense.npy";
  std::string output;
  ASSERT_EQ(Client(absl::StrCat("dense '", image_path_, "' --out='", out,
                                "' --preprocess=fixed --rows_per_chunk=3"),
                   output),
            0)
      << output;
  const Npy npy = ParseNpy(ReadFile(out));
  EXPECT_THAT(npy.header, HasSubstr("'descr': '<f4'"));
  EXPECT_THAT(npy.header,
              HasSubstr(absl::StrCat("'shape': (", want.grid_height(), ", ", want.grid_width(),
                                     ", ", want.patch_tokens().shape(1), ")")));
  EXPECT_TRUE(npy.data == want.patch_tokens().data()) << "dense grid differs from Embed";
}

TEST_F(ClientCliTest, ErrorsAndUsageErrorsExitNonZero) {
  const std::string bad = dir_ + "/noise.jpg";
  ASSERT_TRUE(WriteFile(bad, RandomRgbImage(32, 32, 7).pixels));
  std::string output;
  EXPECT_EQ(Client(absl::StrCat("embed '", bad, "'"), output), 1) << output;
  EXPECT_THAT(output, HasSubstr("error: INVALID_ARGUMENT: "));
  EXPECT_THAT(output, HasSubstr("image[0]"));

  EXPECT_EQ(Client("embed", output), 2) << output;
  EXPECT_EQ(Client("--no_such_flag info", output), 2) << output;
  EXPECT_EQ(Client("frobnicate", output), 2) << output;

  auto port = PickFreePort();
  ASSERT_TRUE(port.ok());
  EXPECT_EQ(RunCommand(absl::StrCat("'", ClientBinary(), "' --server=127.0.0.1:", *port,
                                    " --timeout=5 health 2>&1"),
                       output),
            1)
      << output;
  EXPECT_THAT(output, HasSubstr("error: UNAVAILABLE: "));
}

}  // namespace
}  // namespace dinov3::integration
