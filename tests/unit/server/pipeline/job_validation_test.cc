// The pipeline's own checks of a job (server/pipeline/job_validation.h): counts, id lengths and
// requested sides, with the messages every front door's clients see.
#include "server/pipeline/job_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "server/common/status_reason.h"

namespace dinov3::pipeline {
namespace {

using ::testing::HasSubstr;

RequestLimits Limits() {
  RequestLimits limits;
  limits.max_images_per_request = 2;
  return limits;
}

EmbedJob OneImageJob() {
  EmbedJob job;
  job.images.push_back(EncodedJobImage("x", "a"));
  return job;
}

TEST(JobValidationTest, AValidJobPasses) { EXPECT_TRUE(ValidateJob(OneImageJob(), Limits()).ok()); }

TEST(JobValidationTest, ImageCountMustBeWithinTheLimit) {
  EmbedJob none;
  absl::Status status = ValidateJob(none, Limits());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "images: the request has no images");

  EmbedJob three = OneImageJob();
  three.images.resize(3);
  status = ValidateJob(three, Limits());
  EXPECT_EQ(status.message(),
            "images: 3 images in one request, above the limit of 2 (max_images_per_request)");
  EXPECT_EQ(ReasonOf(status), kReasonTooLarge);
}

TEST(JobValidationTest, IdsAreBounded) {
  EmbedJob long_request_id = OneImageJob();
  long_request_id.request_id = std::string(kMaxIdBytes + 1, 'r');
  absl::Status status = ValidateJob(long_request_id, Limits());
  EXPECT_EQ(status.message(), "request_id: 1025 bytes, above the limit of 1024 bytes");
  EXPECT_EQ(ReasonOf(status), kReasonTooLarge);

  const std::string long_id(kMaxIdBytes + 1, 'i');
  EmbedJob long_image_id = OneImageJob();
  long_image_id.images.push_back(EncodedJobImage("y", long_id));
  status = ValidateJob(long_image_id, Limits());
  EXPECT_EQ(status.message(), "image[1]: id is 1025 bytes, above the limit of 1024 bytes");

  EmbedJob at_the_limit = OneImageJob();
  at_the_limit.request_id = std::string(kMaxIdBytes, 'r');
  EXPECT_TRUE(ValidateJob(at_the_limit, Limits()).ok());
}

TEST(JobValidationTest, RequestedSidesAndOptionsAreChecked) {
  EmbedJob big = OneImageJob();
  big.settings.preprocess.height = kMaxRequestedSide + 1;
  EXPECT_EQ(ValidateJob(big, Limits()).message(),
            "preprocess: height and width must be at most 16384");

  EmbedJob unaligned = OneImageJob();  // preprocess::ValidateOptions: not a patch multiple
  unaligned.settings.preprocess.height = 100;
  unaligned.settings.preprocess.width = 100;
  absl::Status status = ValidateJob(unaligned, Limits());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              HasSubstr("target size 100x100 is not a multiple of the patch size"));
}

}  // namespace
}  // namespace dinov3::pipeline
