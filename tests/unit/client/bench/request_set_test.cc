#include "client/bench/request_set.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "nlohmann/json.hpp"

namespace dinov3::bench {
namespace {

TEST(RequestSetTest, GeneratedImageIsRawRgbOfTheSizeAndSeeded) {
  RequestSpec spec{.width = 32, .height = 16, .images_per_request = 3,
                   .outputs = {v1::CLS, v1::PATCH_TOKENS}, .dtype = v1::FLOAT16,
                   .resize_height = 448, .resize_width = 448, .seed = 9};
  absl::StatusOr<std::vector<v1::Image>> images = LoadImages(spec);
  ASSERT_TRUE(images.ok());
  ASSERT_EQ(images->size(), 1u);
  const v1::RawImage& raw = (*images)[0].raw();
  EXPECT_EQ(raw.width(), 32u);
  EXPECT_EQ(raw.height(), 16u);
  EXPECT_EQ(raw.format(), v1::RGB8);
  EXPECT_EQ(raw.data().size(), 32u * 16 * 3);
  EXPECT_EQ(LoadImages(spec)->at(0).raw().data(), raw.data());
  spec.seed = 10;
  EXPECT_NE(LoadImages(spec)->at(0).raw().data(), raw.data());

  const std::vector<v1::EmbedRequest> requests = MakeEmbedRequests(spec, *images);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].images_size(), 3);
  EXPECT_EQ(requests[0].outputs_size(), 2);
  EXPECT_EQ(requests[0].dtype(), v1::FLOAT16);
  EXPECT_EQ(requests[0].preprocess().height(), 448u);
  const std::vector<v1::EmbedDenseRequest> dense = MakeDenseRequests(spec, *images);
  ASSERT_EQ(dense.size(), 1u);
  EXPECT_EQ(dense[0].image().raw().data(), raw.data());
}

TEST(RequestSetTest, FilesAreSentEncodedOneRequestEach) {
  const std::string a = ::testing::TempDir() + "/a.png";
  const std::string b = ::testing::TempDir() + "/b.jpg";
  std::ofstream(a, std::ios::binary) << "AAAA";
  std::ofstream(b, std::ios::binary) << "BBBBBB";
  RequestSpec spec{.image_files = {a, b}};
  absl::StatusOr<std::vector<v1::Image>> images = LoadImages(spec);
  ASSERT_TRUE(images.ok());
  const std::vector<v1::EmbedRequest> requests = MakeEmbedRequests(spec, *images);
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].images(0).encoded(), "AAAA");
  EXPECT_EQ(requests[1].images(0).encoded(), "BBBBBB");
  spec.image_files.push_back(::testing::TempDir() + "/missing.png");
  EXPECT_EQ(LoadImages(spec).status().code(), absl::StatusCode::kNotFound);
}

TEST(RequestSetTest, HttpBodyFollowsThePeerContract) {
  RequestSpec spec{.width = 4, .height = 2, .outputs = {v1::CLS, v1::PATCH_TOKENS},
                   .dtype = v1::BFLOAT16, .resize_height = 32, .resize_width = 48};
  const std::vector<v1::Image> images = *LoadImages(spec);
  absl::StatusOr<std::vector<std::string>> bodies = MakeHttpBodies(spec, images);
  ASSERT_TRUE(bodies.ok());
  const nlohmann::json body = nlohmann::json::parse(bodies->at(0));
  std::string pixels;
  ASSERT_TRUE(absl::Base64Unescape(body["image"].get<std::string>(), &pixels));
  EXPECT_EQ(pixels, images[0].raw().data());
  EXPECT_EQ(body["encoding"], "raw");
  EXPECT_EQ(body["width"], 4);
  EXPECT_EQ(body["height"], 2);
  EXPECT_EQ(body["outputs"], nlohmann::json({"cls", "patch_tokens"}));
  EXPECT_EQ(body["dtype"], "bfloat16");
  EXPECT_EQ(body["resize"], nlohmann::json({32, 48}));

  spec.images_per_request = 2;
  EXPECT_EQ(MakeHttpBodies(spec, images).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RequestSetTest, ParseSize) {
  EXPECT_EQ(*ParseSize("640x480"), std::make_pair(640, 480));
  for (const char* bad : {"", "224", "x224", "224x", "0x10", "-1x5", "10x10x10", "axb", "99999x1"}) {
    EXPECT_EQ(ParseSize(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace dinov3::bench
