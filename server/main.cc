// dinov3-server: flags and wiring only. Serves dinov3.v1.EmbeddingService until SIGTERM or
// SIGINT, then drains (see server/service/server.h).
#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/service/server.h"

ABSL_FLAG(std::string, model, "", "TorchScript model exported by `python -m model.export`");
ABSL_FLAG(std::string, listen, "0.0.0.0:50051", "gRPC address to listen on (port 0 = any)");
ABSL_FLAG(std::vector<std::string>, devices, {},
          "Devices for model instances: cpu, or cuda:0,cuda:1,... (default: --device)");
ABSL_FLAG(std::string, device, "cpu", "Single device (cpu, cuda or cuda:N) when --devices is "
          "not given");
ABSL_FLAG(int, instances_per_device, 1, "Model instances per device, each with its own thread");
ABSL_FLAG(int, intra_op_threads, 0, "CPU threads per CPU instance (0 = cores / instances)");
ABSL_FLAG(int64_t, max_receive_message_bytes, 64 << 20, "Largest request message accepted");
ABSL_FLAG(int, max_images_per_request, 64, "Most images in one Embed/StreamEmbed request");
ABSL_FLAG(int64_t, max_image_bytes, 32 << 20, "Largest encoded or raw image, bytes");
ABSL_FLAG(int64_t, max_pixels, 40'000'000, "Largest decoded image, width*height (checked "
          "from the header before decoding)");
ABSL_FLAG(int, min_image_side, 8, "Smallest accepted image width or height, pixels");
ABSL_FLAG(int, max_patches, 4096, "Most patches per image after resizing (any mode)");
ABSL_FLAG(int, max_batch_size, 8, "Most images per forward pass (1 = no batching)");
ABSL_FLAG(double, max_queue_delay_ms, 2.0, "How long the oldest waiting image may wait for a "
          "fuller batch (0 = run as soon as an instance is free)");
ABSL_FLAG(std::vector<std::string>, preferred_batch_sizes, {},
          "Optional batch sizes to cut early batches to, e.g. 4,8");
ABSL_FLAG(int64_t, max_batch_pixels, 0, "Cap on the summed H*W of one batch (0 = none)");
ABSL_FLAG(int, max_queue_size, 256, "Most images waiting for the model; beyond: "
          "RESOURCE_EXHAUSTED");
ABSL_FLAG(int, preprocess_threads, 0, "Image decode threads (0 = number of cores)");
ABSL_FLAG(double, drain_seconds, 10, "On SIGTERM, how long accepted work may take to finish");

namespace {

absl::StatusOr<std::vector<int>> ParseInts(const std::vector<std::string>& values,
                                           absl::string_view flag) {
  std::vector<int> out;
  for (const std::string& v : values) {
    int n = 0;
    if (!absl::SimpleAtoi(v, &n)) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag, ": '", v, "' is not a number"));
    }
    out.push_back(n);
  }
  return out;
}

absl::StatusOr<dinov3::service::ServerOptions> OptionsFromFlags() {
  dinov3::service::ServerOptions o;
  o.model_path = absl::GetFlag(FLAGS_model);
  o.listen = absl::GetFlag(FLAGS_listen);
  o.engine.devices = absl::GetFlag(FLAGS_devices);
  if (o.engine.devices.empty()) o.engine.devices = {absl::GetFlag(FLAGS_device)};
  o.engine.instances_per_device = absl::GetFlag(FLAGS_instances_per_device);
  o.engine.intra_op_threads = absl::GetFlag(FLAGS_intra_op_threads);
  o.limits.max_receive_message_bytes = absl::GetFlag(FLAGS_max_receive_message_bytes);
  o.limits.max_images_per_request = absl::GetFlag(FLAGS_max_images_per_request);
  o.limits.image.max_image_bytes = absl::GetFlag(FLAGS_max_image_bytes);
  o.limits.image.max_pixels = absl::GetFlag(FLAGS_max_pixels);
  o.limits.image.min_image_side = absl::GetFlag(FLAGS_min_image_side);
  o.limits.geometry.max_patches = absl::GetFlag(FLAGS_max_patches);
  o.batching.max_batch_size = absl::GetFlag(FLAGS_max_batch_size);
  o.batching.max_queue_delay = absl::Microseconds(
      static_cast<int64_t>(absl::GetFlag(FLAGS_max_queue_delay_ms) * 1000));
  absl::StatusOr<std::vector<int>> preferred =
      ParseInts(absl::GetFlag(FLAGS_preferred_batch_sizes), "preferred_batch_sizes");
  if (!preferred.ok()) return preferred.status();
  o.batching.preferred_batch_sizes = *preferred;
  o.batching.max_batch_pixels = absl::GetFlag(FLAGS_max_batch_pixels);
  o.batching.max_queue_size = absl::GetFlag(FLAGS_max_queue_size);
  o.preprocess_threads = absl::GetFlag(FLAGS_preprocess_threads);
  o.drain_timeout = absl::Seconds(absl::GetFlag(FLAGS_drain_seconds));
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves DINOv3 embeddings over gRPC.\nUsage: dinov3-server --model=FILE.pt [flags]");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_model).empty()) {
    spdlog::error("--model is required (export one with `python -m model.export`)");
    return 2;
  }
  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<dinov3::service::ServerOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    spdlog::error("{}", std::string(options.status().message()));
    return 2;
  }
  auto server = dinov3::service::EmbeddingServer::Start(*options);
  if (!server.ok()) {
    spdlog::error("could not start: {}", server.status().ToString());
    return 1;
  }
  spdlog::info("SERVING dinov3.v1.EmbeddingService on port {}", (*server)->port());
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  spdlog::info("received signal {}, shutting down", signal_number);
  (*server)->Shutdown();
  return 0;
}
