// The torch-free face of the engine for the service: loads a model as one or more instances
// per device and offers its metadata and one BatchRunner per instance (each runs on its own
// batcher dispatch thread). Keeps LibTorch headers out of everything that includes it.
#ifndef DINOV3_SERVER_ENGINE_MODEL_ENGINE_H_
#define DINOV3_SERVER_ENGINE_MODEL_ENGINE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/runtime/model_metadata.h"
#include "server/batching/task.h"
#include "server/common/cpu_features.h"

namespace dinov3::engine {

// An instance whose batches fail on every image this many times in a row, and then on a
// synthetic image, counts as unhealthy.
inline constexpr int kMaxConsecutiveFailures = 3;

struct EngineOptions {
  std::vector<std::string> devices = {"cpu"};  // "cpu", "cuda:0", "cuda:1", ...
  int instances_per_device = 1;
  // Intra-op threads of each instance's dispatch thread. 0: CPU instances get the usable CPUs
  // (affinity mask and cgroup CPU quota, usable_cpus.h) / CPU instances (at least 1), CUDA
  // instances 1 (their host-side work is copying pixels).
  int intra_op_threads = 0;
  int warmup_max_batch_size = 8;  // warm-up runs batch 1 and this at the default size
  // model.compute_dtype (compute_dtype.h): "export", "auto", "float32", "bfloat16", "float16".
  std::string compute_dtype = "export";
  CpuFeatures cpu;  // the CPU that "auto" resolves against
  // Optional. Called with false when an instance becomes unhealthy (kMaxConsecutiveFailures
  // failed batches in a row) while all others were healthy, and with true when the last
  // unhealthy instance succeeds again. Called from dispatch threads, one call at a time; it
  // must not block or call into the engine.
  std::function<void(bool healthy)> on_health_change;
  // Optional. Called on a dispatch thread after every forward pass that succeeded (each half of
  // a batch split after running out of memory counts as its own), with the instance's device,
  // the images in it and the seconds from the start of that (sub-)batch (inputs built on the
  // device) to the end of its forward. Must not block or call into the engine.
  std::function<void(const std::string& device, int images, double seconds)> on_batch;
};

// Gives memory that freed models left cached back: the CUDA caching allocator's unused blocks
// (when CUDA is in use) and the C library's free heap pages. Call after freeing a model.
void ReleaseCachedMemory();

class ModelEngine {
 public:
  // Loads `path` once per device; that device's instances share the module and its weights
  // (no probe forward: the instances warm up in PrepareThread on their dispatch threads). Errors as
  // ModelRuntime::Load (which also rejects unknown or unavailable devices), or InvalidArgument for
  // bad options (no devices, instances or warm-up batch < 1, intra-op threads < 0).
  static absl::StatusOr<std::unique_ptr<ModelEngine>> Load(const std::string& path,
                                                           const EngineOptions& options);
  virtual ~ModelEngine() = default;

  virtual const model::ModelMetadata& metadata() const = 0;
  // e.g. "cpu x2 (intra-op threads 1)" or "cuda:0 x1, cuda:1 x1".
  virtual std::string Describe() const = 0;
  // The caching allocator's memory on each CUDA device in use (empty with CPU devices only).
  // Thread-safe; cheap enough to call at every metrics scrape.
  virtual std::vector<DeviceMemory> DeviceMemoryUsage() const = 0;
  // The devices in use, as LibTorch names them ("cpu", "cuda:0"; a bare "cuda" is "cuda:0"),
  // each once, in the order of EngineOptions::devices.
  virtual std::vector<std::string> DeviceNames() const = 0;
  // One runner per instance (devices in order, then instances), valid as long as the engine.
  // Each must be driven from one thread: PrepareThread (intra-op threads, CUDA stream, warm-up
  // forwards at the default size; an error keeps the instance out of service), then Run.
  virtual std::vector<batching::BatchRunner*> runners() = 0;
  // True when every instance is a CPU one: then the preprocess pool builds each task's model
  // input with PrepareInput, and the instances only stack the inputs and run the model. With a
  // CUDA instance the inputs are built on the device from the uint8 pixels (image_tensor.h).
  virtual bool PreparesInputOnHost() const = 0;
  // For an engine that PreparesInputOnHost: host_input.h, on the calling thread. Thread-safe.
  virtual absl::Status PrepareInput(batching::EmbedTask& task) const = 0;
};

}  // namespace dinov3::engine

#endif  // DINOV3_SERVER_ENGINE_MODEL_ENGINE_H_
