#include "server/engine/device_stream.h"

#include "absl/strings/str_cat.h"

#if DINOV3_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace dinov3::engine {

absl::StatusOr<std::optional<c10::Stream>> NewInstanceStream(const c10::Device& device) {
  if (!device.is_cuda()) return std::optional<c10::Stream>();
#if DINOV3_WITH_CUDA
  const c10::DeviceIndex index = device.has_index() ? device.index() : -1;  // -1: current
  return std::optional<c10::Stream>(
      c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index).unwrap());
#else
  return absl::FailedPreconditionError(
      absl::StrCat("device '", device.str(), "': this build has no CUDA support"));
#endif
}

void SynchronizeStream(const std::optional<c10::Stream>& stream) {
  if (stream.has_value()) stream->synchronize();
}

int64_t OutOfMemoryCount(const c10::Device& device) {
#if DINOV3_WITH_CUDA
  if (device.is_cuda()) {
    const c10::DeviceIndex index =
        device.has_index() ? device.index() : c10::cuda::current_device();
    return c10::cuda::CUDACachingAllocator::getDeviceStats(index).num_ooms;
  }
#endif
  (void)device;
  return 0;
}

std::optional<DeviceMemory> DeviceMemoryOf(const c10::Device& device) {
#if DINOV3_WITH_CUDA
  if (device.is_cuda() && device.has_index()) {
    using c10::CachingAllocator::StatType;
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    const auto aggregate = static_cast<size_t>(StatType::AGGREGATE);
    return DeviceMemory{device.str(), stats.allocated_bytes[aggregate].current,
                        stats.reserved_bytes[aggregate].current};
  }
#endif
  (void)device;
  return std::nullopt;
}

void EmptyDeviceCaches() {
#if DINOV3_WITH_CUDA
  try {
    if (c10::cuda::device_count() > 0) c10::cuda::CUDACachingAllocator::emptyCache();
  } catch (const std::exception&) {  // nothing was cached: nothing to give back
  }
#endif
}

}  // namespace dinov3::engine
