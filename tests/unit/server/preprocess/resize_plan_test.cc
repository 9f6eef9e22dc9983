// PlanResize: the three modes produce the sizes and crops of their reference transforms.
#include "server/preprocess/resize_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace dinov3::preprocess {
namespace {

using ::testing::HasSubstr;

TEST(ResizePlan, FixedIsTheDefaultSizeWithoutCrop) {
  auto plan = PlanResize(480, 640, {}, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->resize_height, 224);
  EXPECT_EQ(plan->resize_width, 224);
  EXPECT_EQ(plan->out_height, 224);
  EXPECT_EQ(plan->crop_top, 0);
  EXPECT_EQ(plan->interpolation, Interpolation::kBilinear);
}

TEST(ResizePlan, CenterCropFollowsTorchvision) {
  // Resize(256): 480x640 -> 256x341 (int(256*640/480)); CenterCrop(224): top 16, left
  // round(58.5) = 58 (Python rounds half to even).
  PreprocessOptions o;
  o.mode = ResizeMode::kShorterSideCenterCrop;
  auto plan = PlanResize(480, 640, o, {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->resize_height, 256);
  EXPECT_EQ(plan->resize_width, 341);
  EXPECT_EQ(plan->crop_top, 16);
  EXPECT_EQ(plan->crop_left, 58);
  EXPECT_EQ(plan->out_width, 224);
  EXPECT_EQ(plan->interpolation, Interpolation::kBicubic);
  auto portrait = PlanResize(640, 480, o, {});
  ASSERT_TRUE(portrait.ok());
  EXPECT_EQ(portrait->resize_height, 341);
  EXPECT_EQ(portrait->resize_width, 256);
}

TEST(ResizePlan, KeepAspectRoundsToPatchesAndRespectsTheBudget) {
  PreprocessOptions o;
  o.mode = ResizeMode::kKeepAspect;
  o.height = 768;
  auto plan = PlanResize(3000, 4000, o, {});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->out_height, 768);
  EXPECT_EQ(plan->out_width, 1024);
  o.max_patches = 1000;
  plan = PlanResize(3000, 4000, o, {});
  ASSERT_TRUE(plan.ok());
  EXPECT_LE((plan->out_height / 16) * (plan->out_width / 16), 1000);
  EXPECT_NEAR(static_cast<double>(plan->out_width) / plan->out_height, 4.0 / 3.0, 0.1);
  EXPECT_EQ(plan->out_height % 16, 0);
}

TEST(ResizePlan, TinyImagesGetAtLeastOnePatch) {
  PreprocessOptions o;
  o.mode = ResizeMode::kKeepAspect;
  auto plan = PlanResize(9, 9, o, {});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->out_height, 16);
  EXPECT_EQ(plan->out_width, 16);
}

TEST(ResizePlan, BadOptionsNameTheProblem) {
  PreprocessOptions o;
  o.height = 100;  // not a multiple of 16
  EXPECT_THAT(PlanResize(10, 10, o, {}).status().message(), HasSubstr("multiple of the patch"));
  o.height = 2048;
  o.width = 2048;  // 16384 patches
  EXPECT_THAT(PlanResize(10, 10, o, {}).status().message(), HasSubstr("max_patches"));
  PreprocessOptions crop;
  crop.mode = ResizeMode::kShorterSideCenterCrop;
  crop.height = 224;
  crop.width = 160;
  EXPECT_THAT(PlanResize(10, 10, crop, {}).status().message(), HasSubstr("square"));
  PreprocessOptions aspect;
  aspect.mode = ResizeMode::kKeepAspect;
  aspect.max_patches = 999999;
  EXPECT_THAT(PlanResize(10, 10, aspect, {}).status().message(), HasSubstr("server limit"));
}

}  // namespace
}  // namespace dinov3::preprocess

namespace dinov3::preprocess {
namespace {

// Hostile geometry (found in review): extreme aspect ratios must neither blow up the
// intermediate resize nor overflow the arithmetic.
TEST(ResizePlan, ExtremeAspectRatioIsRefusedForCenterCrop) {
  PreprocessOptions o;
  o.mode = ResizeMode::kShorterSideCenterCrop;
  absl::StatusOr<ResizePlan> plan = PlanResize(8, 1 << 20, o, {});
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), ::testing::HasSubstr("too elongated"));
}

TEST(ResizePlan, KeepAspectStaysWithinTheBudgetForExtremeInputs) {
  PreprocessOptions o;
  o.mode = ResizeMode::kKeepAspect;
  o.height = 16384;
  for (auto [h, w] : {std::pair{8, 1 << 20}, std::pair{1 << 20, 8}, std::pair{16384, 16384}}) {
    absl::StatusOr<ResizePlan> plan = PlanResize(h, w, o, {});
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_GT(plan->out_height, 0);
    EXPECT_GT(plan->out_width, 0);
    EXPECT_EQ(plan->out_height % 16, 0);
    EXPECT_EQ(plan->out_width % 16, 0);
    EXPECT_LE(int64_t{plan->out_height / 16} * (plan->out_width / 16), 4096) << h << "x" << w;
  }
}

}  // namespace
}  // namespace dinov3::preprocess
