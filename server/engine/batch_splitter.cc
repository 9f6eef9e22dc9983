#include "server/engine/batch_splitter.h"

namespace dinov3::engine {
namespace {

size_t RunRange(size_t begin, size_t end, absl::FunctionRef<absl::Status(size_t, size_t)> attempt,
                absl::FunctionRef<void(size_t, size_t, const absl::Status&)> fail) {
  const absl::Status status = attempt(begin, end);
  if (status.ok()) return 0;
  if (end - begin == 1) {
    fail(begin, end, status);
    return 1;
  }
  const size_t mid = begin + (end - begin) / 2;
  return RunRange(begin, mid, attempt, fail) + RunRange(mid, end, attempt, fail);
}

}  // namespace

size_t RunIsolatingFailures(
    size_t size, absl::FunctionRef<absl::Status(size_t begin, size_t end)> attempt,
    absl::FunctionRef<void(size_t begin, size_t end, const absl::Status& status)> fail) {
  if (size == 0) return 0;
  return RunRange(0, size, attempt, fail);
}

}  // namespace dinov3::engine
