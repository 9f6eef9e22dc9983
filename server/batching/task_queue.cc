#include "server/batching/task_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace dinov3::batching {
namespace {

bool IsDead(const EmbedTask& task, absl::Time now) {
  return (task.is_cancelled && task.is_cancelled()) || now >= task.deadline;
}

// Finishes a task that must not reach a device (IsDead was true).
void FinishDead(EmbedTask& task) {
  if (task.is_cancelled && task.is_cancelled()) {
    task.Finish(absl::CancelledError("request cancelled before inference"));
  } else {
    task.Finish(absl::DeadlineExceededError("deadline passed while waiting in the queue"));
  }
}

}  // namespace

TaskQueue::TaskQueue(const TaskQueueOptions& options, BatchRunner* runner)
    : options_(options), runner_(runner) {
  for (int i = 0; i < options_.num_workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

TaskQueue::~TaskQueue() { Shutdown(); }

absl::Status TaskQueue::Schedule(std::unique_ptr<EmbedTask>& task) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return absl::UnavailableError("server is shutting down");
  if (static_cast<int>(tasks_.size()) >= options_.max_queue_size) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue full: ", tasks_.size(), " images waiting (max_queue_size ",
        options_.max_queue_size, "); retry later"));
  }
  task->enqueue_time = absl::Now();
  tasks_.push_back(std::move(task));
  return absl::OkStatus();
}

int TaskQueue::size() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(tasks_.size());
}

void TaskQueue::Shutdown() {
  std::deque<std::unique_ptr<EmbedTask>> abandoned;
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_ && workers_.empty()) return;
    shutdown_ = true;
    abandoned.swap(tasks_);
  }
  for (auto& task : abandoned) task->Finish(absl::UnavailableError("server is shutting down"));
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

bool TaskQueue::HasWorkOrShutdown() const { return shutdown_ || !tasks_.empty(); }

TaskBatch TaskQueue::NextBatch(TaskBatch& dead) {
  TaskBatch batch;
  const absl::Time now = absl::Now();
  while (!tasks_.empty() && batch.empty()) {
    std::unique_ptr<EmbedTask> first = std::move(tasks_.front());
    tasks_.pop_front();
    (IsDead(*first, now) ? dead : batch).push_back(std::move(first));
  }
  if (batch.empty()) return batch;
  const ResizePlan& shape = batch.front()->plan;
  for (auto it = tasks_.begin();
       it != tasks_.end() && static_cast<int>(batch.size()) < options_.max_batch_size;) {
    if ((*it)->plan.out_height == shape.out_height && (*it)->plan.out_width == shape.out_width) {
      std::unique_ptr<EmbedTask> task = std::move(*it);
      it = tasks_.erase(it);
      (IsDead(*task, now) ? dead : batch).push_back(std::move(task));
    } else {
      ++it;
    }
  }
  return batch;
}

void TaskQueue::WorkerLoop() {
  while (true) {
    TaskBatch batch, dead;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &TaskQueue::HasWorkOrShutdown));
      if (shutdown_ && tasks_.empty()) return;
      batch = NextBatch(dead);
    }
    for (auto& task : dead) FinishDead(*task);  // callbacks run outside the lock
    if (!batch.empty()) runner_->Run(std::move(batch));
  }
}

}  // namespace dinov3::batching
