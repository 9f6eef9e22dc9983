// The pure parts of client/cpp/pictures.h: --patch parsing, the keep-aspect size, the "hot"
// colour map, cosine maps and the PCA colours (against planted principal directions). The
// commands themselves run against a real server in tests/integration/python/test_pictures.py.
#include "client/cpp/pictures.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <iostream>
#include <random>
#include <vector>

namespace dinov3::client {
namespace {

// A grid whose patch i is sum_k coordinate_k(i) * e_{axis_k} plus `noise` (D = dim).
PatchGrid PlantedGrid(int height, int width, int dim, const std::vector<double>& scales,
                      double noise, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  PatchGrid grid{height, width, dim, std::vector<float>(size_t{1} * height * width * dim)};
  for (int i = 0; i < height * width; ++i) {
    float* patch = &grid.values[size_t{1} * i * dim];
    for (int d = 0; d < dim; ++d) patch[d] = static_cast<float>(noise) * normal(rng);
    for (size_t k = 0; k < scales.size(); ++k) {
      patch[5 * k + 1] += static_cast<float>(scales[k]) * normal(rng);
    }
  }
  return grid;
}

// Pearson correlation of channel `channel` (BGR order) of `colours` with coordinate k of the
// planted grid (its entry 5k+1).
double Correlation(const cv::Mat& colours, int channel, const PatchGrid& grid, int k) {
  std::vector<double> a, b;
  for (int i = 0; i < grid.height * grid.width; ++i) {
    a.push_back(colours.at<cv::Vec3f>(i / grid.width, i % grid.width)[channel]);
    b.push_back(grid.values[size_t{1} * i * grid.dim + 5 * k + 1]);
  }
  auto centre = [](std::vector<double>& v) {
    double mean = 0;
    for (double x : v) mean += x / v.size();
    for (double& x : v) x -= mean;
  };
  centre(a);
  centre(b);
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / std::sqrt(aa * bb);
}

TEST(PicturesTest, ParsesPatchIndices) {
  absl::StatusOr<PatchIndex> patch = ParsePatchIndex("3,14");
  ASSERT_TRUE(patch.ok()) << patch.status();
  EXPECT_EQ(patch->row, 3);
  EXPECT_EQ(patch->col, 14);
  for (const char* bad : {"", "3", "3,", ",4", "a,b", "-1,2", "1,2,3", " 1,2", "1,2x"}) {
    EXPECT_FALSE(ParsePatchIndex(bad).ok()) << bad;
  }
}

TEST(PicturesTest, ShorterSideKeepsTheAspect) {
  EXPECT_EQ(ShorterSideFor(224, 320, 768), 538);
  EXPECT_EQ(ShorterSideFor(320, 224, 768), 538);
  EXPECT_EQ(ShorterSideFor(500, 500, 768), 768);
  EXPECT_EQ(ShorterSideFor(1, 10000, 768), 1);
}

TEST(PicturesTest, HotRunsBlackRedYellowWhite) {
  const cv::Mat values = (cv::Mat_<float>(1, 6) << -1, 0, 1.0 / 3, 2.0 / 3, 1, 2);
  const cv::Mat colours = HotColors(values, 0, 1);
  const std::vector<cv::Vec3b> expected = {{0, 0, 0},     {0, 0, 0},       {0, 0, 255},
                                           {0, 255, 255}, {255, 255, 255}, {255, 255, 255}};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(colours.at<cv::Vec3b>(0, i), expected[i]) << i;
}

TEST(PicturesTest, CosineMapIsCosine) {
  const PatchGrid grid{2, 2, 2, {1, 0, 0, 2, -3, 0, 1, 1}};
  const cv::Mat map = CosineMap(grid, {0, 0});
  EXPECT_NEAR(map.at<float>(0, 0), 1, 1e-6);
  EXPECT_NEAR(map.at<float>(0, 1), 0, 1e-6);
  EXPECT_NEAR(map.at<float>(1, 0), -1, 1e-6);
  EXPECT_NEAR(map.at<float>(1, 1), std::sqrt(0.5), 1e-6);
}

TEST(PicturesTest, PcaFindsPlantedDirectionsInOrderOnOneScale) {
  const std::vector<double> scales = {9, 4, 2};
  const std::vector<PatchGrid> grids = {PlantedGrid(12, 16, 64, scales, 0.05, 1),
                                        PlantedGrid(8, 8, 64, scales, 0.05, 2)};
  const std::vector<cv::Mat> colours = PcaColors(grids);
  ASSERT_EQ(colours.size(), 2u);
  double lo[3] = {1, 1, 1}, hi[3] = {0, 0, 0};
  for (size_t g = 0; g < grids.size(); ++g) {
    ASSERT_EQ(colours[g].size(), cv::Size(grids[g].width, grids[g].height));
    for (int k = 0; k < 3; ++k) {
      // Component k is BGR channel 2 - k; the sign rule makes the correlation positive. Not
      // 1: the sampled coordinates correlate a little over 256 patches (~0.06), which turns
      // the principal directions slightly away from the planted axes.
      EXPECT_GT(Correlation(colours[g], 2 - k, grids[g], k), 0.99) << g << " " << k;
      std::vector<cv::Mat> channels;
      cv::split(colours[g], channels);
      double a, b;
      cv::minMaxLoc(channels[2 - k], &a, &b);
      lo[k] = std::min(lo[k], a);
      hi[k] = std::max(hi[k], b);
    }
  }
  for (int k = 0; k < 3; ++k) {  // min-max over all fitted patches together
    EXPECT_NEAR(lo[k], 0, 1e-5);
    EXPECT_NEAR(hi[k], 1, 1e-5);
  }
}

TEST(PicturesTest, PcaOfAViTLSizedGridConverges) {
  const auto start = std::chrono::steady_clock::now();
  const PatchGrid grid = PlantedGrid(48, 48, 1024, {6, 5, 4}, 0.3, 3);
  const std::vector<cv::Mat> colours = PcaColors({grid});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "48x48 x 1024 PCA: " << seconds << " s\n";
  for (int k = 0; k < 3; ++k) EXPECT_GT(Correlation(colours[0], 2 - k, grid, k), 0.99) << k;
}

}  // namespace
}  // namespace dinov3::client
