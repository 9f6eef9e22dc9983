// Failure isolation for a batch: when running a range of a batch fails, run its two halves
// instead (recursively, down to single items), so that
//   - one batch too large for the device memory left does not fail images that fit on their
//     own (out of memory), and
//   - one image the model fails on (a "poison" input) does not fail the images batched with it.
// A model that fails on everything costs about twice the forwards of the batch before every
// image gets its error.
//
// Torch-free, so the policy is unit-tested without a device. Thread-compatible (no state).
#ifndef DINOV3_SERVER_ENGINE_BATCH_SPLITTER_H_
#define DINOV3_SERVER_ENGINE_BATCH_SPLITTER_H_

#include <cstddef>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace dinov3::engine {

// Runs the items [0, size) of a batch through `attempt(begin, end)`, which runs one contiguous
// range and returns OK (the range is done) or an error (nothing of the range is done; it may be
// retried). A failed range of more than one item is split into [begin, mid) and [mid, end), run
// in that order. Calls `fail(begin, end, status)` for every single item whose attempt failed,
// with that attempt's status. Returns the number of items that failed.
size_t RunIsolatingFailures(
    size_t size, absl::FunctionRef<absl::Status(size_t begin, size_t end)> attempt,
    absl::FunctionRef<void(size_t begin, size_t end, const absl::Status& status)> fail);

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_BATCH_SPLITTER_H_
