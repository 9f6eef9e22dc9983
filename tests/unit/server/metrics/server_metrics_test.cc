// ServerMetrics: what each recording call adds to the scrape, the per-model series (the model
// label), the scrape-time sources and the process_* metrics.
#include "server/metrics/server_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace dinov3::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ServerMetricsTest, RequestsCountedByMethodModelCodeAndReason) {
  ServerMetrics metrics("1.2.3");
  metrics.SetModelInfo("m", "vits16", "float32", "cpu");
  metrics.RecordRequest("Embed", "m", "OK", 0.003, "");
  metrics.RecordRequest("Embed", "m", "OK", 0.2, "");
  metrics.RecordRequest("Embed", "m", "INVALID_ARGUMENT", 0.001, "too_large");
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"Embed\",model=\"m\","
                              "protocol=\"dinov3\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"INVALID_ARGUMENT\",method=\"Embed\","
                              "model=\"m\",protocol=\"dinov3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"m\",reason=\"too_large\"} 1\n"));
  // Pre-made by SetModelInfo.
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"m\",reason=\"queue_full\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_request_duration_seconds_count{method=\"Embed\",model=\"m\","
                              "protocol=\"dinov3\"} 3\n"));
  // 0.003 s falls in le=0.005 but not le=0.0025; 0.2 s only from le=0.25 on.
  EXPECT_THAT(
      text,
      HasSubstr(
          "dinov3_request_duration_seconds_bucket{method=\"Embed\",model=\"m\",protocol=\"dinov3\","
          "le=\"0.0025\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "dinov3_request_duration_seconds_bucket{method=\"Embed\",model=\"m\",protocol=\"dinov3\","
          "le=\"0.005\"} 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "dinov3_request_duration_seconds_bucket{method=\"Embed\",model=\"m\",protocol=\"dinov3\","
          "le=\"0.25\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_build_info{version=\"1.2.3\"} 1\n"));
}

TEST(ServerMetricsTest, RequestsOfTwoModelsAreSeparateSeries) {
  ServerMetrics metrics("v");
  metrics.RecordRequest("Embed", "a", "OK", 0.01, "");
  metrics.RecordRequest("Embed", "a", "OK", 0.01, "");
  metrics.RecordRequest("Embed", "b", "OK", 0.01, "");
  metrics.RecordRequest("EmbedDense", "b", "RESOURCE_EXHAUSTED", 0.01, "queue_full");
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"Embed\",model=\"a\","
                              "protocol=\"dinov3\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"Embed\",model=\"b\","
                              "protocol=\"dinov3\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "dinov3_request_duration_seconds_count{method=\"Embed\",model=\"a\",protocol=\"dinov3\"}"
          " 2\n"));
  EXPECT_THAT(
      text,
      HasSubstr(
          "dinov3_request_duration_seconds_count{method=\"Embed\",model=\"b\",protocol=\"dinov3\"}"
          " 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"b\",reason=\"queue_full\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("dinov3_rejected_total{model=\"a\",reason=\"queue_full\"} 1")));
}

TEST(ServerMetricsTest, UnknownModelSeriesExistFromConstruction) {
  ServerMetrics metrics("v");
  std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"Embed\",model=\"" +
                              std::string(kUnknownModel) + "\",protocol=\"dinov3\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"(unknown)\",reason=\"queue_full\"} "
                              "0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_request_duration_seconds_count{method=\"StreamEmbed\","
                              "model=\"(unknown)\",protocol=\"dinov3\"} 0\n"));
  // Only requests reach an unknown model: no batches, queue or preprocessing series.
  EXPECT_THAT(text, Not(HasSubstr("dinov3_images_total{model=\"(unknown)\"}")));
  EXPECT_THAT(text, Not(HasSubstr("dinov3_batch_size_count{model=\"(unknown)\"}")));
  metrics.RecordRequest("Embed", kUnknownModel, "NOT_FOUND", 0.0001, "invalid_request");
  text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"NOT_FOUND\",method=\"Embed\","
                              "model=\"(unknown)\",protocol=\"dinov3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"(unknown)\","
                              "reason=\"invalid_request\"} 1\n"));
}

TEST(ServerMetricsTest, EachFrontDoorsMethodsCountUnderItsProtocol) {
  ServerMetrics metrics("v");
  metrics.RecordRequest("ModelInfer", "m", "OK", 0.01, "");
  metrics.RecordRequest("ModelMetadata", "m", "OK", 0.01, "");
  metrics.RecordRequest("RestModelInfer", "m", "INVALID_ARGUMENT", 0.01, "invalid_request");
  metrics.RecordRequest("OpenAIEmbeddings", "m", "OK", 0.01, "");
  metrics.RecordRequest("StreamEmbed", "m", "OK", 0.01, "");
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"ModelInfer\","
                              "model=\"m\",protocol=\"oip-grpc\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"ModelMetadata\","
                              "model=\"m\",protocol=\"oip-grpc\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"INVALID_ARGUMENT\","
                              "method=\"RestModelInfer\",model=\"m\",protocol=\"oip-rest\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_requests_total{code=\"OK\",method=\"OpenAIEmbeddings\","
                              "model=\"m\",protocol=\"openai\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_request_duration_seconds_count{method=\"StreamEmbed\","
                              "model=\"m\",protocol=\"dinov3\"} 1\n"));
  // A method no front door names cannot add a protocol value.
  EXPECT_EQ(ProtocolOfMethod("SomethingNew"), "dinov3");
}

TEST(ServerMetricsTest, UnauthenticatedHasAnEmptyModel) {
  ServerMetrics metrics("v");
  EXPECT_THAT(metrics.Scrape(),
              HasSubstr("dinov3_rejected_total{model=\"\",reason=\"unauthenticated\"} 0\n"));
  metrics.RecordUnauthenticated();
  metrics.RecordUnauthenticated();
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"\",reason=\"unauthenticated\"} 2\n"));
  EXPECT_THAT(text, Not(HasSubstr("dinov3_requests_total{code=\"UNAUTHENTICATED\"")));
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
  metrics.SetModelInfo("m", "vitb16", "float16", "cuda:1");
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_inference_duration_seconds_count{device="
                                          "\"cuda:1\",model=\"m\"} 0\n"));
  metrics.RecordBatch("m", "cuda:1", 3, 0.04);
  metrics.RecordBatch("m", "cuda:1", 8, 0.05);
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_images_total{model=\"m\"} 11\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{model=\"m\",le=\"2\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{model=\"m\",le=\"4\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{model=\"m\",le=\"8\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_sum{model=\"m\"} 11\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_inference_duration_seconds_count{device=\"cuda:1\","
                              "model=\"m\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_model_info{device=\"cuda:1\",dtype=\"float16\",model=\"m\","
                              "variant=\"vitb16\"} 1"));
}

TEST(ServerMetricsTest, BatchesOfTwoModelsCountSeparately) {
  ServerMetrics metrics("v");
  metrics.SetModelInfo("a", "vits16", "float32", "cuda:0");
  metrics.SetModelInfo("b", "vitl16", "bfloat16", "cuda:0");
  metrics.RecordBatch("a", "cuda:0", 3, 0.01);
  metrics.RecordBatch("a", "cuda:0", 1, 0.01);
  metrics.RecordBatch("b", "cuda:0", 16, 0.2);
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_images_total{model=\"a\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_images_total{model=\"b\"} 16\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_count{model=\"a\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_count{model=\"b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_sum{model=\"a\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_sum{model=\"b\"} 16\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{model=\"a\",le=\"4\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{model=\"b\",le=\"8\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_bucket{model=\"b\",le=\"16\"} 1\n"));
  // One device, two models: one inference series each.
  EXPECT_THAT(text, HasSubstr("dinov3_inference_duration_seconds_count{device=\"cuda:0\","
                              "model=\"a\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_inference_duration_seconds_count{device=\"cuda:0\","
                              "model=\"b\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_model_info{device=\"cuda:0\",dtype=\"float32\",model=\"a\","
                              "variant=\"vits16\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_model_info{device=\"cuda:0\",dtype=\"bfloat16\",model=\"b\","
                              "variant=\"vitl16\"} 1\n"));
}

TEST(ServerMetricsTest, ModelInfoPreCreatesTheModelsSeriesAtZero) {
  ServerMetrics metrics("v");
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("model=\"m\"")));
  metrics.SetModelInfo("m", "vits16", "float32", "cpu");
  const std::string text = metrics.Scrape();
  for (const char* method : {"Embed", "StreamEmbed", "EmbedDense", "GetModelInfo"}) {
    EXPECT_THAT(text, HasSubstr(std::string("dinov3_requests_total{code=\"OK\",method=\"") +
                                method + "\",model=\"m\",protocol=\"dinov3\"} 0\n"))
        << method;
    EXPECT_THAT(text, HasSubstr(std::string("dinov3_request_duration_seconds_count{method=\"") +
                                method + "\",model=\"m\",protocol=\"dinov3\"} 0\n"))
        << method;
  }
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"m\",reason=\"queue_full\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_rejected_total{model=\"m\",reason=\"too_large\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_preprocess_duration_seconds_count{model=\"m\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_duration_seconds_count{model=\"m\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_batch_size_count{model=\"m\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_images_total{model=\"m\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_inference_duration_seconds_count{device=\"cpu\","
                              "model=\"m\"} 0\n"));
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
  metrics.ObservePreprocess("m", 0.002);
  metrics.ObserveQueueWait("m", 0.0001);
  metrics.ObserveQueueWait("m", 12);
  metrics.ObserveQueueWait("other", 0.0001);
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_preprocess_duration_seconds_count{model=\"m\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("dinov3_queue_duration_seconds_bucket{model=\"m\",le=\"0.0005\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_duration_seconds_bucket{model=\"m\",le=\"10\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_duration_seconds_bucket{model=\"m\",le=\"30\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_duration_seconds_count{model=\"other\"} 1\n"));
}

TEST(ServerMetricsTest, ScrapeTimeSourcesAreReadAtEachScrape) {
  ServerMetrics metrics("v");
  metrics.SetQueueCapacity("m", 1024);
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_queue_capacity_images{model=\"m\"} 1024\n"));
  // No source yet: the family is there, without series.
  EXPECT_THAT(metrics.Scrape(), HasSubstr("# TYPE dinov3_queue_images gauge\n"));
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("dinov3_queue_images{")));
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("dinov3_device_memory")));
  int64_t depth = 5;
  metrics.SetQueueDepthSource("m", [&depth] { return depth; });
  metrics.SetDeviceMemorySource([] {
    return std::vector<DeviceMemory>{{"cuda:0", 1000, 4096}, {"cuda:1", 7, 8}};
  });
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_queue_images{model=\"m\"} 5\n"));
  depth = 9;
  const std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_queue_images{model=\"m\"} 9\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_device_memory_allocated_bytes{device=\"cuda:0\"} 1000\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_device_memory_reserved_bytes{device=\"cuda:0\"} 4096\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_device_memory_reserved_bytes{device=\"cuda:1\"} 8\n"));
  metrics.SetQueueDepthSource("m", nullptr);
  metrics.SetDeviceMemorySource(nullptr);
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("dinov3_queue_images{")));
  EXPECT_THAT(metrics.Scrape(), Not(HasSubstr("dinov3_device_memory")));
}

TEST(ServerMetricsTest, QueueDepthAndCapacityHaveOneSeriesPerModel) {
  ServerMetrics metrics("v");
  metrics.SetQueueCapacity("a", 100);
  metrics.SetQueueCapacity("b", 200);
  int64_t depth_a = 3;
  metrics.SetQueueDepthSource("a", [&depth_a] { return depth_a; });
  metrics.SetQueueDepthSource("b", [] { return int64_t{7}; });
  std::string text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_queue_capacity_images{model=\"a\"} 100\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_capacity_images{model=\"b\"} 200\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_images{model=\"a\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_images{model=\"b\"} 7\n"));
  // Replacing a model's source replaces its series only.
  metrics.SetQueueDepthSource("a", [] { return int64_t{4}; });
  depth_a = 99;
  text = metrics.Scrape();
  EXPECT_THAT(text, HasSubstr("dinov3_queue_images{model=\"a\"} 4\n"));
  EXPECT_THAT(text, Not(HasSubstr("dinov3_queue_images{model=\"a\"} 99\n")));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_images{model=\"b\"} 7\n"));
  // Removing a model's source removes its series and keeps the other's.
  metrics.SetQueueDepthSource("a", nullptr);
  text = metrics.Scrape();
  EXPECT_THAT(text, Not(HasSubstr("dinov3_queue_images{model=\"a\"}")));
  EXPECT_THAT(text, HasSubstr("dinov3_queue_images{model=\"b\"} 7\n"));
  // Removing a source that is not there changes nothing.
  metrics.SetQueueDepthSource("never", nullptr);
  EXPECT_THAT(metrics.Scrape(), HasSubstr("dinov3_queue_images{model=\"b\"} 7\n"));
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
