// The batching policy as a plain, single-threaded data structure: which waiting tasks form the
// next batch, and when. No threads, no clock of its own (callers pass `now`), so every rule is
// unit-tested deterministically; Batcher (batcher.h) adds the locking and the worker threads.
//
// Rules (Triton's dynamic batcher, simplified):
//   - Tasks are grouped by shape (out_height x out_width), output dtype and intermediate layers
//     (a forward returns one layer set: requests for different sets never share one); only a
//     group's tasks share a batch, at most max_batch_size of them and at most max_batch_pixels in
//     total.
//   - The group served next is the one whose best task has the highest priority; among equal
//     priorities the oldest task's group goes first, so no shape starves.
//   - A group is ready when it can fill a batch, or when its oldest task has waited
//     max_queue_delay (0 = ready at once). When ready, the batch takes the group's tasks by
//     priority then age; with preferred_batch_sizes, a batch formed before it is full is cut to
//     the largest preferred size that fits (the rest wait for the next one).
//   - Cancelled or expired tasks never enter a batch: NextBatch hands them back separately so
//     the caller finishes them (CANCELLED / DEADLINE_EXCEEDED).
// Add takes a task only when it returns OK (RESOURCE_EXHAUSTED when max_queue_size images wait).
#ifndef DINOV3_SERVER_BATCHING_BATCH_POLICY_H_
#define DINOV3_SERVER_BATCHING_BATCH_POLICY_H_

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/batching/task.h"

namespace dinov3::batching {

struct BatchingOptions {
  int max_batch_size = 8;                                  // images per batch
  absl::Duration max_queue_delay = absl::Milliseconds(2);  // oldest task's wait for a fuller batch
  std::vector<int> preferred_batch_sizes;                  // optional, e.g. {4, 8}
  int max_queue_size = 256;                                // waiting images
  int64_t max_batch_pixels = 0;  // sum of out_h*out_w per batch; 0 = no cap
};

// Returns InvalidArgument naming the bad field.
absl::Status ValidateBatchingOptions(const BatchingOptions& options);

class BatchPolicy {
 public:
  explicit BatchPolicy(const BatchingOptions& options) : options_(options) {}

  // Takes `task` (OK) or leaves it with the caller (RESOURCE_EXHAUSTED). Stamps enqueue_time.
  absl::Status Add(std::unique_ptr<EmbedTask>& task, absl::Time now);

  struct Decision {
    TaskBatch batch;                    // empty when nothing is ready
    TaskBatch dead;                     // cancelled or expired tasks to finish now
    std::optional<absl::Time> wake_at;  // when a waiting group becomes ready by delay
  };
  // Forms the next ready batch, if any. With `flush` every group counts as ready and batches
  // are not cut to preferred sizes (draining at shutdown).
  Decision NextBatch(absl::Time now, bool flush = false);

  // Removes and returns every waiting task (shutdown).
  TaskBatch TakeAll();

  int size() const { return size_; }

 private:
  // out_height, out_width, dtype, layer indices, layer norm
  using GroupKey = std::tuple<int, int, int, std::vector<int>, bool>;
  using Group = std::list<std::unique_ptr<EmbedTask>>;  // arrival order

  void DropDead(absl::Time now, TaskBatch& dead);
  bool Ready(const Group& group, absl::Time now) const;
  TaskBatch Take(Group& group, bool flush);

  const BatchingOptions options_;
  std::map<GroupKey, Group> groups_;
  int size_ = 0;
};

}  // namespace dinov3::batching

#endif  // DINOV3_SERVER_BATCHING_BATCH_POLICY_H_
