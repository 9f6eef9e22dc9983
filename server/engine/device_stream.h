// The CUDA-specific bits of a model instance, behind a device-neutral interface so that the
// engine compiles and links against both LibTorch builds: with CUDA (the target defines
// DINOV3_WITH_CUDA=1) and CPU-only (libc10_cuda not linked; CUDA devices are then unavailable).
//
// An instance on a CUDA device runs all of its work on its own stream from LibTorch's pool;
// callers make it current with c10::OptionalStreamGuard (which also selects the device), a
// no-op for CPU instances, which have no stream. Thread-safe (no shared state of its own).
#ifndef DINOV3_SERVER_ENGINE_DEVICE_STREAM_H_
#define DINOV3_SERVER_ENGINE_DEVICE_STREAM_H_

#include <c10/core/Device.h>
#include <c10/core/Stream.h>

#include <cstdint>
#include <optional>

#include "absl/status/statusor.h"
#include "server/common/types.h"

namespace dinov3::engine {

// A new stream for an instance on `device`: nullopt for CPU; for CUDA a (normal priority) stream
// from the pool of the device's index. FailedPrecondition when this build has no CUDA.
absl::StatusOr<std::optional<c10::Stream>> NewInstanceStream(const c10::Device& device);

// Blocks until all work queued on `stream` is done; nothing for nullopt.
void SynchronizeStream(const std::optional<c10::Stream>& stream);

// How many device allocations on `device` have failed for lack of memory since start-up, as
// counted by LibTorch's CUDA caching allocator (0 for CPU). A change across a call that failed
// tells an out-of-memory error apart from others, whatever the error's type or message became
// on its way out of the TorchScript interpreter.
int64_t OutOfMemoryCount(const c10::Device& device);

// The caching allocator's current allocated and reserved bytes on a CUDA `device` (given with
// its index); nullopt for CPU devices and in a build without CUDA.
std::optional<DeviceMemory> DeviceMemoryOf(const c10::Device& device);

// Returns the CUDA caching allocator's unused blocks to the devices (nothing without CUDA).
void EmptyDeviceCaches();

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_DEVICE_STREAM_H_
