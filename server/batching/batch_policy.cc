#include "server/batching/batch_policy.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/status_reason.h"

namespace dinov3::batching {
namespace {

int64_t Pixels(const EmbedTask& task) {
  return int64_t{task.plan.out_height} * task.plan.out_width;
}

bool IsDead(const EmbedTask& task, absl::Time now) {
  return (task.is_cancelled && task.is_cancelled()) || now >= task.deadline;
}

}  // namespace

absl::Status ValidateBatchingOptions(const BatchingOptions& o) {
  if (o.max_batch_size < 1) {
    return absl::InvalidArgumentError("max_batch_size must be at least 1");
  }
  if (o.max_queue_size < 1) {
    return absl::InvalidArgumentError("max_queue_size must be at least 1");
  }
  if (o.max_queue_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_queue_delay must not be negative");
  }
  if (o.max_batch_pixels < 0) {
    return absl::InvalidArgumentError("max_batch_pixels must not be negative");
  }
  for (int size : o.preferred_batch_sizes) {
    if (size < 1 || size > o.max_batch_size) {
      return absl::InvalidArgumentError(absl::StrCat("preferred_batch_sizes: ", size,
                                                     " is not within 1..max_batch_size (",
                                                     o.max_batch_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status BatchPolicy::Add(std::unique_ptr<EmbedTask>& task, absl::Time now) {
  if (size_ >= options_.max_queue_size) {
    return WithReason(absl::ResourceExhaustedError(
                          absl::StrCat("queue full: ", size_, " images waiting (max_queue_size ",
                                       options_.max_queue_size, "); retry later")),
                      kReasonQueueFull);
  }
  task->enqueue_time = now;
  const GroupKey key{task->plan.out_height, task->plan.out_width, static_cast<int>(task->dtype),
                     task->layers.indices, task->layers.norm};
  groups_[key].push_back(std::move(task));
  ++size_;
  return absl::OkStatus();
}

void BatchPolicy::DropDead(absl::Time now, TaskBatch& dead) {
  for (auto group = groups_.begin(); group != groups_.end();) {
    for (auto it = group->second.begin(); it != group->second.end();) {
      if (IsDead(**it, now)) {
        dead.push_back(std::move(*it));
        it = group->second.erase(it);
        --size_;
      } else {
        ++it;
      }
    }
    group = group->second.empty() ? groups_.erase(group) : std::next(group);
  }
}

bool BatchPolicy::Ready(const Group& group, absl::Time now) const {
  if (static_cast<int>(group.size()) >= options_.max_batch_size) return true;
  if (options_.max_batch_pixels > 0) {
    int64_t pixels = 0;
    for (const auto& task : group) pixels += Pixels(*task);
    if (pixels >= options_.max_batch_pixels) return true;
  }
  return now - group.front()->enqueue_time >= options_.max_queue_delay;
}

TaskBatch BatchPolicy::Take(Group& group, bool flush) {
  std::vector<Group::iterator> order;
  for (auto it = group.begin(); it != group.end(); ++it) order.push_back(it);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return (*a)->priority > (*b)->priority;  // ties keep arrival order
  });
  int count = 0;
  int64_t pixels = 0;
  bool pixel_limited = false;
  for (const auto& it : order) {
    if (count == options_.max_batch_size) break;
    if (count > 0 && options_.max_batch_pixels > 0 &&
        pixels + Pixels(**it) > options_.max_batch_pixels) {
      pixel_limited = true;  // as full as the pixel cap allows: not cut further
      break;
    }
    pixels += Pixels(**it);
    ++count;
  }
  if (!flush && !pixel_limited && count < options_.max_batch_size &&
      !options_.preferred_batch_sizes.empty()) {
    int preferred = 0;
    for (int size : options_.preferred_batch_sizes) {
      if (size <= count) preferred = std::max(preferred, size);
    }
    if (preferred > 0) count = preferred;
  }
  TaskBatch batch;
  for (int i = 0; i < count; ++i) {
    batch.push_back(std::move(*order[i]));
    group.erase(order[i]);
  }
  size_ -= count;
  return batch;
}

BatchPolicy::Decision BatchPolicy::NextBatch(absl::Time now, bool flush) {
  Decision decision;
  DropDead(now, decision.dead);
  auto best = groups_.end();
  auto key = [](const Group& g) {
    int priority = g.front()->priority;
    for (const auto& task : g) priority = std::max(priority, task->priority);
    return std::pair{-priority, g.front()->enqueue_time};  // smaller is served first
  };
  for (auto it = groups_.begin(); it != groups_.end(); ++it) {
    if (!flush && !Ready(it->second, now)) {
      const absl::Time ready_at = it->second.front()->enqueue_time + options_.max_queue_delay;
      if (!decision.wake_at || ready_at < *decision.wake_at) decision.wake_at = ready_at;
      continue;
    }
    if (best == groups_.end() || key(it->second) < key(best->second)) best = it;
  }
  if (best != groups_.end()) {
    decision.batch = Take(best->second, flush);
    if (best->second.empty()) groups_.erase(best);
  }
  return decision;
}

TaskBatch BatchPolicy::TakeAll() {
  TaskBatch all;
  for (auto& [key, group] : groups_) {
    for (auto& task : group) all.push_back(std::move(task));
  }
  groups_.clear();
  size_ = 0;
  return all;
}

}  // namespace dinov3::batching
