// Out-of-memory back-off for a batch: when running a range of a batch runs out of device memory,
// run its two halves instead (recursively, down to single items), so that one batch that is too
// large for the memory left on the device does not fail images that fit on their own.
//
// Torch-free, so the policy is unit-tested without a device. Thread-compatible (no state).
#ifndef DINOV3_SERVER_ENGINE_BATCH_SPLITTER_H_
#define DINOV3_SERVER_ENGINE_BATCH_SPLITTER_H_

#include <cstddef>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace dinov3::engine {

// Runs the items [0, size) of a batch through `attempt(begin, end)`, which runs one contiguous
// range and returns OK (the range is done), ResourceExhausted (out of device memory: nothing of
// the range is done; the range may be retried) or another error (final). A ResourceExhausted
// range of more than one item is split into [begin, mid) and [mid, end), run in that order.
// Calls `fail(begin, end, status)` for every range whose final outcome is an error (a
// ResourceExhausted one always has a single item). Returns true when every range succeeded.
bool RunSplittingOnOutOfMemory(
    size_t size, absl::FunctionRef<absl::Status(size_t begin, size_t end)> attempt,
    absl::FunctionRef<void(size_t begin, size_t end, const absl::Status& status)> fail);

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_BATCH_SPLITTER_H_
