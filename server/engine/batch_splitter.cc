#include "server/engine/batch_splitter.h"

namespace dinov3::engine {
namespace {

bool RunRange(size_t begin, size_t end, absl::FunctionRef<absl::Status(size_t, size_t)> attempt,
              absl::FunctionRef<void(size_t, size_t, const absl::Status&)> fail) {
  const absl::Status status = attempt(begin, end);
  if (status.ok()) return true;
  if (!absl::IsResourceExhausted(status) || end - begin == 1) {
    fail(begin, end, status);
    return false;
  }
  const size_t mid = begin + (end - begin) / 2;
  const bool first_ok = RunRange(begin, mid, attempt, fail);
  const bool second_ok = RunRange(mid, end, attempt, fail);
  return first_ok && second_ok;
}

}  // namespace

bool RunSplittingOnOutOfMemory(
    size_t size, absl::FunctionRef<absl::Status(size_t begin, size_t end)> attempt,
    absl::FunctionRef<void(size_t begin, size_t end, const absl::Status& status)> fail) {
  if (size == 0) return true;
  return RunRange(0, size, attempt, fail);
}

}  // namespace dinov3::engine
