// The failure-isolation policy (out of memory, poison inputs), with a fake attempt function.
#include "server/engine/batch_splitter.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace dinov3::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using Range = std::pair<size_t, size_t>;

struct Recorder {
  std::vector<Range> attempts;
  std::vector<Range> failures;
  std::vector<absl::Status> statuses;
};

// Runs a batch of `size` where attempting a range returns `outcome(begin, end)`.
template <typename Outcome>
size_t RunSplit(size_t size, Recorder& r, Outcome outcome) {
  return RunIsolatingFailures(
      size,
      [&](size_t begin, size_t end) {
        r.attempts.emplace_back(begin, end);
        return outcome(begin, end);
      },
      [&](size_t begin, size_t end, const absl::Status& status) {
        r.failures.emplace_back(begin, end);
        r.statuses.push_back(status);
      });
}

TEST(BatchSplitterTest, SuccessRunsTheBatchOnce) {
  Recorder r;
  EXPECT_EQ(RunSplit(8, r, [](size_t, size_t) { return absl::OkStatus(); }), 0u);
  EXPECT_THAT(r.attempts, ElementsAre(Range{0, 8}));
  EXPECT_THAT(r.failures, IsEmpty());
}

TEST(BatchSplitterTest, EmptyBatchRunsNothing) {
  Recorder r;
  EXPECT_EQ(RunSplit(0, r, [](size_t, size_t) { return absl::OkStatus(); }), 0u);
  EXPECT_THAT(r.attempts, IsEmpty());
}

TEST(BatchSplitterTest, OutOfMemorySplitsInHalvesUntilTheRangesFit) {
  Recorder r;
  EXPECT_EQ(RunSplit(8, r,
                     [](size_t begin, size_t end) {
                       return end - begin > 2 ? absl::ResourceExhaustedError("oom")
                                              : absl::OkStatus();
                     }),
            0u);
  EXPECT_THAT(r.attempts, ElementsAre(Range{0, 8}, Range{0, 4}, Range{0, 2}, Range{2, 4},
                                      Range{4, 8}, Range{4, 6}, Range{6, 8}));
  EXPECT_THAT(r.failures, IsEmpty());
}

TEST(BatchSplitterTest, OddSizesSplitToSingleItems) {
  Recorder r;
  EXPECT_EQ(RunSplit(3, r,
                     [](size_t begin, size_t end) {
                       return end - begin > 1 ? absl::ResourceExhaustedError("oom")
                                              : absl::OkStatus();
                     }),
            0u);
  EXPECT_THAT(r.attempts,
              ElementsAre(Range{0, 3}, Range{0, 1}, Range{1, 3}, Range{1, 2}, Range{2, 3}));
}

TEST(BatchSplitterTest, SingleItemsThatDoNotFitFail) {
  Recorder r;
  EXPECT_EQ(RunSplit(4, r, [](size_t, size_t) { return absl::ResourceExhaustedError("oom"); }), 4u);
  EXPECT_EQ(r.attempts.size(), 7u);  // 4, 2, 1, 1, 2, 1, 1
  EXPECT_THAT(r.failures, ElementsAre(Range{0, 1}, Range{1, 2}, Range{2, 3}, Range{3, 4}));
  for (const absl::Status& s : r.statuses) EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
}

TEST(BatchSplitterTest, APoisonItemFailsAloneAndTheOthersSucceed) {
  Recorder r;
  // Item 5 makes every range holding it fail; the others are fine.
  EXPECT_EQ(RunSplit(8, r,
                     [](size_t begin, size_t end) {
                       return begin <= 5 && 5 < end ? absl::InternalError("poison")
                                                    : absl::OkStatus();
                     }),
            1u);
  EXPECT_THAT(r.attempts, ElementsAre(Range{0, 8}, Range{0, 4}, Range{4, 8}, Range{4, 6},
                                      Range{4, 5}, Range{5, 6}, Range{6, 8}));
  EXPECT_THAT(r.failures, ElementsAre(Range{5, 6}));
  EXPECT_TRUE(absl::IsInternal(r.statuses.at(0)));
}

TEST(BatchSplitterTest, AModelThatAlwaysFailsFailsEveryItemWithItsOwnStatus) {
  Recorder r;
  EXPECT_EQ(RunSplit(4, r,
                     [](size_t begin, size_t end) {
                       return end - begin == 4 ? absl::ResourceExhaustedError("oom")
                                               : absl::InternalError("broken");
                     }),
            4u);
  EXPECT_EQ(r.attempts.size(), 7u);  // 4, 2, 1, 1, 2, 1, 1: under twice the batch
  EXPECT_THAT(r.failures, ElementsAre(Range{0, 1}, Range{1, 2}, Range{2, 3}, Range{3, 4}));
  for (const absl::Status& s : r.statuses) EXPECT_TRUE(absl::IsInternal(s)) << s;
}

}  // namespace
}  // namespace dinov3::engine
