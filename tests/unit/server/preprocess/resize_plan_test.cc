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

// ---------------------------------------------------------------- resize intermediate

TEST(ResizePlan, ElongatedImageWhoseResizeIntermediateIsTooLargeIsRefused) {
  // 8 wide, 12700 tall to a 16x65536 target: the width pass alone would make 12700 x 65536
  // floats x 3 (10 GB) from a 100 KB image.
  PreprocessOptions o;
  o.height = 16;
  o.width = 65536;
  ModelGeometry g;
  g.max_patches = 4096;
  auto plan = PlanResize(12700, 8, o, g);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(),
              HasSubstr("resizing a 8x12700 image to 65536x16 passes through a 65536x12700 "
                        "image (832307200 pixels), above 16777216 pixels"));
  // The same image to the default 224x224 is fine, and so is a target that keeps the width.
  EXPECT_TRUE(PlanResize(12700, 8, {}, g).ok());
  o.width = 8 * 16;
  EXPECT_TRUE(PlanResize(12700, 8 * 16, o, g).ok());
}

TEST(ResizePlan, IntermediateIsTheWidthPassOnlyWhenBothSidesChange) {
  const ResizePlan plan{224, 224, 0, 0, 224, 224, Interpolation::kBilinear};
  EXPECT_EQ(ResizeIntermediatePixels(3000, 4000, plan), int64_t{3000} * 224);
  EXPECT_EQ(ResizeIntermediatePixels(224, 4000, plan), 0);  // one pass
  EXPECT_EQ(ResizeIntermediatePixels(3000, 224, plan), 0);
}

// ---------------------------------------------------------------- fast decode

TEST(ChooseDecodeReduction, ExactNeverReduces) {
  EXPECT_EQ(*ChooseDecodeReduction(3000, 4000, {}, {}), 1);
}

TEST(ChooseDecodeReduction, TakesTheLargestScaleThatKeepsTheTarget) {
  PreprocessOptions o;
  o.decode = DecodeMode::kFast;
  EXPECT_EQ(*ChooseDecodeReduction(3000, 4000, o, {}), 8);  // 375x500 >= 224x224
  EXPECT_EQ(*ChooseDecodeReduction(1000, 1000, o, {}), 4);  // 250 >= 224, 125 is not
  EXPECT_EQ(*ChooseDecodeReduction(448, 448, o, {}), 2);    // exactly 2x
  EXPECT_EQ(*ChooseDecodeReduction(447, 4000, o, {}), 1);   // not 2x on one side
  EXPECT_EQ(*ChooseDecodeReduction(224, 224, o, {}), 1);
  o.height = o.width = 512;
  EXPECT_EQ(*ChooseDecodeReduction(3000, 4000, o, {}), 4);  // 750x1000 >= 512
}

TEST(ChooseDecodeReduction, HoldsForBothOrientations) {
  // A fixed 256 high x 1024 wide target: EXIF may turn the stored image after decoding, so each
  // stored side must keep 1024. 3000x4000 / 2 = 1500x2000 does, / 4 = 750x1000 does not.
  PreprocessOptions o;
  o.decode = DecodeMode::kFast;
  o.height = 256;
  o.width = 1024;
  EXPECT_EQ(*ChooseDecodeReduction(3000, 4000, o, {}), 2);
  EXPECT_EQ(*ChooseDecodeReduction(1000, 4000, o, {}), 1);
  // Keep-aspect at the image's size never shrinks: no reduction can keep the target.
  o = {};
  o.decode = DecodeMode::kFast;
  o.mode = ResizeMode::kKeepAspect;
  EXPECT_EQ(*ChooseDecodeReduction(480, 640, o, {}), 1);
  o.height = 224;  // shorter side to 224: 3000x4000 -> 224x304 (whole patches)
  EXPECT_EQ(*ChooseDecodeReduction(3000, 4000, o, {}), 8);
}

TEST(ChooseDecodeReduction, PassesPlanningErrorsOn) {
  PreprocessOptions o;
  o.decode = DecodeMode::kFast;
  o.height = 100;  // not a multiple of the patch size
  EXPECT_EQ(ChooseDecodeReduction(3000, 4000, o, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dinov3::preprocess
