// ServerMetrics: what each recording call adds to the scrape, the scrape-time sources and the
// process_* metrics.
#include "server/metrics/server_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace dinov3::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ServerMetricsTest, RequestsCountedByMethodCodeAndReason) {
  ServerMetrics metrics("1.2.3");
  metrics.RecordRequest("Embed", "OK", 0.003, "");
  metrics.RecordRequest("Embed", "OK", 0.2, "");
  metrics.RecordRequest("Embed", "INVALID_ARGUMENT", 0.001, "too_large");
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"Embed\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("dinov3_requests_total{code=\"INVALID_ARGUMENT\",method=\"Embed\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{reason=\"too_large\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{reason=\"queue_full\"} 0\n"));  // pre-made
  EXPECT_THAT(text, HasSubstr("dinov3_request_duration_seconds_count{method=\"Embed\"} 3\n"));
  // 0.003 s falls in le=0.005 but not le=0.0025; 0.2 s only from le=0.25 on.
  EXPECT_THAT(text, HasSubstr(
                        "dinov3_request_duration_seconds_bucket{method=\"Embed\",le=\"0.0025\"} 1\n"));
  EXPECT_THAT(text, HasSubstr(
                        "dinov3_request_duration_seconds_bucket{method=\"Embed\",le=\"0.005\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
                        "dinov3_request_duration_seconds_bucket{method=\"Embed\",le=\"0.25\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_build_info{version=\"1.2.3\"} 1\n"));
}

TEST(ServerMetricsTest, InflightGoesUpAndDown) {
  ServerMetrics metrics("v");
  metrics.RequestStarted();
  metrics.RequestStarted();
  metrics.RequestEnded();
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_inflight_requests 1\n"));
}

TEST(ServerMetricsTest, BatchesFeedBatchSizeImagesAndInference) {
  ServerMetrics metrics("v");
  metrics.SetModelInfo("vitb16", "float16", "cuda:1");
  EXPECT_THAT(metrics.Scrape(),
              HasSubstr("dinov3_inference_duration_seconds_count{device=\"cuda:1\"} 0\n"));
  metrics.RecordBatch("cuda:1", 3, 0.04);
  metrics.RecordBatch("cuda:1", 8, 0.05);
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_images_total 11\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{le=\"2\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{le=\"4\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{le=\"8\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_sum 11\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_inference_duration_seconds_count{device=\"cuda:1\"} 2\n"));
  EXPECT_THAT(text, HasSubstr(
                        "dinov3_model_info{device=\"cuda:1\",dtype=\"float16\",variant=\"vitb16\"} 1"));
}

TEST(ServerMetricsTest, CpuInfoCarriesModelAndFeatures) {
  ServerMetrics metrics("v");
  metrics.SetCpuInfo("Intel(R) Xeon(R) Platinum 8480+", "avx2,avx512f,amx_bf16");
  EXPECT_THAT(metrics.Scrape(),
              HasSubstr("dinov3_cpu_info{features=\"avx2,avx512f,amx_bf16\",model=\"Intel(R) "
                        "Xeon(R) Platinum 8480+\"} 1"));
}

TEST(ServerMetricsTest, PreprocessAndQueueHistograms) {
  ServerMetrics metrics("v");
  metrics.ObservePreprocess(0.002);
  metrics.ObserveQueueWait(0.0001);
  metrics.ObserveQueueWait(12);
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_preprocess_duration_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_duration_seconds_bucket{le=\"10\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_duration_seconds_bucket{le=\"30\"} 2\n"));
}

TEST(ServerMetricsTest, ScrapeTimeSourcesAreReadAtEachScrape) {
  ServerMetrics metrics("v");
  metrics.SetQueueCapacity(1024);
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_queue_capacity_images 1024\n"));
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_queue_images 0\n"));
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("dinov3_device_memory")));
  int64_t depth = 5;
  metrics.SetQueueDepthSource([&depth] { return depth; });
  metrics.SetDeviceMemorySource(
      [] { return std::vector<DeviceMemory>{{"cuda:0", 1000, 4096}, {"cuda:1", 7, 8}}; });
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_queue_images 5\n"));
  depth = 9;
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_queue_images 9\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_device_memory_allocated_bytes{device=\"cuda:0\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_device_memory_reserved_bytes{device=\"cuda:0\"} 4096\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_device_memory_reserved_bytes{device=\"cuda:1\"} 8\n"));
  metrics.SetQueueDepthSource(nullptr);
  metrics.SetDeviceMemorySource(nullptr);
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_queue_images 0\n"));
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("dinov3_device_memory")));
}

TEST(ServerMetricsTest, ProcessMetricsAreReal) {
  ServerMetrics metrics("v");
  const std::string text = metrics.Scrape();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_start_time_seconds",
                           "process_open_fds", "process_max_fds"}) {
    EXPECT_THAT(text, HasSubstr(std::string("\n") + name + " ")) << name;
  }
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter"));
  EXPECT_THAT(text, Not(HasSubstr("process_resident_memory_bytes 0\n")));
  EXPECT_THAT(text, Not(HasSubstr("process_open_fds 0\n")));
}

}  // namespace
}  // namespace dinov3::metrics
