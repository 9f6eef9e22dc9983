// Validate: every kind of check (range, allowed values, list elements, the cross-field rule on
// preferred batch sizes, devices, addresses, the required model path), the transport security
// rules on server.listen and http.listen, and the http.* ranges, each with its message.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "config/config.h"
#include "tests/unit/config/config_test_util.h"

namespace dinov3::config {
namespace {

using ::testing::HasSubstr;

ServerConfig Valid() {
  ServerConfig config;
  config.model.path = "/models/m.pt";
  return config;
}

std::string Error(const ServerConfig& config) {
  absl::Status status = Validate(config);
  if (status.ok()) return "OK";
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

TEST(ConfigValidateTest, DefaultsWithAModelAndTheTestConfigsAreValid) {
  EXPECT_EQ(Error(Valid()), "OK");
  EXPECT_EQ(Error(testing::ConfigA()), "OK");
  EXPECT_EQ(Error(testing::ConfigB()), "OK");
  EXPECT_EQ(Error(testing::ConfigC()), "OK");
}

TEST(ConfigValidateTest, IntegerRanges) {
  ServerConfig c = Valid();
  c.batching.max_batch_size = 0;
  EXPECT_EQ(Error(c), "batching.max_batch_size must be between 1 and 1024, got 0");
  c.batching.max_batch_size = 1025;
  EXPECT_EQ(Error(c), "batching.max_batch_size must be between 1 and 1024, got 1025");
  c.batching.max_batch_size = 1024;
  EXPECT_EQ(Error(c), "OK");

  c = Valid();
  c.server.max_receive_message_bytes = int64_t{1} << 31;
  EXPECT_EQ(Error(c),
            "server.max_receive_message_bytes must be between 1024 and 2147483647, got "
            "2147483648");
  c = Valid();
  c.batching.max_batch_pixels = -1;
  EXPECT_EQ(Error(c), "batching.max_batch_pixels must be between 0 and 1099511627776, got -1");
  c = Valid();
  c.model.instances_per_device = 0;
  EXPECT_EQ(Error(c), "model.instances_per_device must be between 1 and 64, got 0");
  c = Valid();
  c.limits.min_image_side = 0;
  EXPECT_EQ(Error(c), "limits.min_image_side must be between 1 and 4096, got 0");
}

TEST(ConfigValidateTest, NumberRanges) {
  ServerConfig c = Valid();
  c.batching.max_queue_delay_ms = -0.5;
  EXPECT_EQ(Error(c), "batching.max_queue_delay_ms must be between 0 and 10000, got -0.5");
  c.batching.max_queue_delay_ms = std::nan("");
  EXPECT_EQ(Error(c), "batching.max_queue_delay_ms must be between 0 and 10000, got nan");
  c = Valid();
  c.server.drain_seconds = 3601;
  EXPECT_EQ(Error(c), "server.drain_seconds must be between 0 and 3600, got 3601");
}

TEST(ConfigValidateTest, AllowedValues) {
  ServerConfig c = Valid();
  c.logging.level = "verbose";
  EXPECT_EQ(Error(c),
            "logging.level must be one of trace, debug, info, warn, error, critical, off; got "
            "'verbose'");
  c = Valid();
  c.logging.format = "xml";
  EXPECT_EQ(Error(c), "logging.format must be one of text, json; got 'xml'");
  c = Valid();
  c.logging.access_log_level = "INFO";  // case matters
  EXPECT_THAT(Error(c), HasSubstr("logging.access_log_level must be one of"));
}

TEST(ConfigValidateTest, PreferredBatchSizesAreCheckedAgainstMaxBatchSize) {
  ServerConfig c = Valid();
  c.batching.preferred_batch_sizes = {0};
  EXPECT_EQ(Error(c),
            "batching.preferred_batch_sizes[0] must be between 1 and batching.max_batch_size "
            "(8), got 0");
  c.batching.preferred_batch_sizes = {4, 16};
  EXPECT_EQ(Error(c),
            "batching.preferred_batch_sizes[1] must be between 1 and batching.max_batch_size "
            "(8), got 16");
  c.batching.max_batch_size = 16;
  EXPECT_EQ(Error(c), "OK");
}

TEST(ConfigValidateTest, Devices) {
  ServerConfig c = Valid();
  c.model.devices = {"cpu", "gpu"};
  EXPECT_EQ(Error(c), "model.devices[1] must be cpu, cuda or cuda:N, got 'gpu'");
  c.model.devices = {"cuda:x"};
  EXPECT_EQ(Error(c), "model.devices[0] must be cpu, cuda or cuda:N, got 'cuda:x'");
  c.model.devices = {"cuda:"};
  EXPECT_EQ(Error(c), "model.devices[0] must be cpu, cuda or cuda:N, got 'cuda:'");
  c.model.devices = {};
  EXPECT_EQ(Error(c), "model.devices must name at least one device");
  c.model.devices = {"cuda:0", "cuda:1", "cuda:0"};
  EXPECT_EQ(Error(c),
            "model.devices[2] repeats 'cuda:0' (use model.instances_per_device for more "
            "instances)");
  c.model.devices = {"cpu", "cuda", "cuda:0"};  // cuda is cuda:0
  EXPECT_EQ(Error(c),
            "model.devices[2] repeats 'cuda:0' (use model.instances_per_device for more "
            "instances)");
  c.model.devices = {"cpu", "cuda", "cuda:15"};
  EXPECT_EQ(Error(c), "OK");
}

TEST(ConfigValidateTest, PlaintextOnlyOnLoopbackUnlessAllowed) {
  ServerConfig c = Valid();
  for (const char* loopback :
       {"127.0.0.1:50051", "127.8.9.10:1", "localhost:0", "[::1]:50051", "unix:/tmp/s.sock"}) {
    c.server.listen = loopback;
    EXPECT_TRUE(IsLoopbackAddress(loopback)) << loopback;
    EXPECT_EQ(Error(c), "OK") << loopback;
  }
  for (const char* exposed : {"0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051",
                              "dinov3.example.com:443", "localhost.example.com:1", "[::2]:1"}) {
    c.server.listen = exposed;
    EXPECT_FALSE(IsLoopbackAddress(exposed)) << exposed;
    EXPECT_EQ(Error(c), std::string("server.listen ") + exposed +
                            " is not a loopback address and TLS is off: set tls.cert_file and "
                            "tls.key_file, or tls.allow_plaintext: true to serve plaintext there "
                            "(behind a TLS-terminating proxy or mesh)");
  }
  c.server.listen = "0.0.0.0:50051";
  c.tls.allow_plaintext = true;
  EXPECT_EQ(Error(c), "OK");
  c.tls.allow_plaintext = false;
  c.tls.cert_file = "/tls/server.crt";
  c.tls.key_file = "/tls/server.key";
  EXPECT_EQ(Error(c), "OK");
}

TEST(ConfigValidateTest, TlsFilesGoTogether) {
  ServerConfig c = Valid();
  c.tls.cert_file = "/tls/server.crt";
  EXPECT_EQ(Error(c), "tls.cert_file and tls.key_file go together: set both, or neither");
  c.tls.cert_file = "";
  c.tls.key_file = "/tls/server.key";
  EXPECT_EQ(Error(c), "tls.cert_file and tls.key_file go together: set both, or neither");
  c.tls.key_file = "";
  c.tls.client_ca_file = "/tls/ca.pem";
  EXPECT_EQ(Error(c),
            "tls.client_ca_file needs tls.cert_file and tls.key_file (mutual TLS is TLS with "
            "client certificates)");
  c.tls.cert_file = "/tls/server.crt";
  c.tls.key_file = "/tls/server.key";
  EXPECT_EQ(Error(c), "OK");
}

TEST(ConfigValidateTest, ApiKeysNeverCrossTheNetworkInPlaintext) {
  ServerConfig c = Valid();
  c.auth.api_keys_file = "/secrets/keys";
  EXPECT_EQ(Error(c), "OK");  // loopback
  c.server.listen = "0.0.0.0:50051";
  c.tls.allow_plaintext = true;
  EXPECT_EQ(Error(c),
            "auth.api_keys_file: API keys would cross the network in clear text on "
            "server.listen 0.0.0.0:50051: set tls.cert_file and tls.key_file, or listen on a "
            "loopback address");
  c.tls.cert_file = "/tls/server.crt";
  c.tls.key_file = "/tls/server.key";
  EXPECT_EQ(Error(c), "OK");
}

TEST(ConfigValidateTest, HttpListenPlaintextOnlyOnLoopbackUnlessAllowed) {
  ServerConfig c = Valid();
  for (const char* loopback : {"127.0.0.1:8080", "localhost:0", "[::1]:8080"}) {
    c.http.listen = loopback;
    EXPECT_EQ(Error(c), "OK") << loopback;
  }
  for (const char* exposed : {"0.0.0.0:8080", "[::]:8080", "10.1.2.3:80", "api.example.com:443"}) {
    c.http.listen = exposed;
    EXPECT_EQ(Error(c), std::string("http.listen ") + exposed +
                            " is not a loopback address and TLS is off: set tls.cert_file and "
                            "tls.key_file, or tls.allow_plaintext: true to serve plaintext there "
                            "(behind a TLS-terminating proxy or mesh)");
  }
  c.http.listen = "0.0.0.0:8080";
  c.http.enabled = false;  // not served: not checked
  EXPECT_EQ(Error(c), "OK");
  c.http.enabled = true;
  c.tls.allow_plaintext = true;
  EXPECT_EQ(Error(c), "OK");
  c.tls.allow_plaintext = false;
  c.tls.cert_file = "/tls/server.crt";
  c.tls.key_file = "/tls/server.key";
  EXPECT_EQ(Error(c), "OK");
  // Both addresses exposed: one error each, gRPC's first; its message is unchanged.
  c = Valid();
  c.server.listen = "0.0.0.0:50051";
  c.http.listen = "0.0.0.0:8080";
  EXPECT_EQ(Error(c),
            "server.listen 0.0.0.0:50051 is not a loopback address and TLS is off: set "
            "tls.cert_file and tls.key_file, or tls.allow_plaintext: true to serve plaintext "
            "there (behind a TLS-terminating proxy or mesh)\n"
            "http.listen 0.0.0.0:8080 is not a loopback address and TLS is off: set "
            "tls.cert_file and tls.key_file, or tls.allow_plaintext: true to serve plaintext "
            "there (behind a TLS-terminating proxy or mesh)");
}

TEST(ConfigValidateTest, ApiKeysNeverCrossTheNetworkInPlaintextOverHttp) {
  ServerConfig c = Valid();
  c.auth.api_keys_file = "/secrets/keys";
  c.http.listen = "0.0.0.0:8080";
  c.tls.allow_plaintext = true;
  EXPECT_EQ(Error(c),
            "auth.api_keys_file: API keys would cross the network in clear text on "
            "http.listen 0.0.0.0:8080: set tls.cert_file and tls.key_file, or listen on a "
            "loopback address");
  c.http.enabled = false;
  EXPECT_EQ(Error(c), "OK");
  c.http.enabled = true;
  c.http.listen = "127.0.0.1:8080";
  EXPECT_EQ(Error(c), "OK");
  c.http.listen = "0.0.0.0:8080";
  c.tls.cert_file = "/tls/server.crt";
  c.tls.key_file = "/tls/server.key";
  EXPECT_EQ(Error(c), "OK");
  // Admin keys are gRPC-only (ModelAdmin): an exposed plaintext http.listen does not carry them.
  c = Valid();
  c.admin.api_keys_file = "/secrets/admin";
  c.http.listen = "0.0.0.0:8080";
  c.tls.allow_plaintext = true;
  EXPECT_EQ(Error(c), "OK");
}

TEST(ConfigValidateTest, HttpRanges) {
  struct Case {
    void (*set)(ServerConfig&);
    const char* error;
  };
  const Case cases[] = {
      {[](ServerConfig& c) { c.http.max_connections = 0; },
       "http.max_connections must be between 1 and 1000000, got 0"},
      {[](ServerConfig& c) { c.http.max_connections = 1'000'001; },
       "http.max_connections must be between 1 and 1000000, got 1000001"},
      {[](ServerConfig& c) { c.http.max_header_bytes = 1023; },
       "http.max_header_bytes must be between 1024 and 1048576, got 1023"},
      {[](ServerConfig& c) { c.http.max_header_bytes = (1 << 20) + 1; },
       "http.max_header_bytes must be between 1024 and 1048576, got 1048577"},
      {[](ServerConfig& c) { c.http.request_timeout_seconds = 0.05; },
       "http.request_timeout_seconds must be between 0.1 and 3600, got 0.05"},
      {[](ServerConfig& c) { c.http.request_timeout_seconds = 3601; },
       "http.request_timeout_seconds must be between 0.1 and 3600, got 3601"},
      {[](ServerConfig& c) { c.http.idle_timeout_seconds = 0; },
       "http.idle_timeout_seconds must be between 0.1 and 86400, got 0"},
      {[](ServerConfig& c) { c.http.idle_timeout_seconds = 86401; },
       "http.idle_timeout_seconds must be between 0.1 and 86400, got 86401"},
      {[](ServerConfig& c) { c.http.max_json_depth = 1; },
       "http.max_json_depth must be between 2 and 1000, got 1"},
      {[](ServerConfig& c) { c.http.max_json_depth = 1001; },
       "http.max_json_depth must be between 2 and 1000, got 1001"},
  };
  for (const Case& test : cases) {
    ServerConfig c = Valid();
    test.set(c);
    EXPECT_EQ(Error(c), test.error);
  }
  ServerConfig c = Valid();  // the bounds themselves are allowed
  c.http.max_connections = 1;
  c.http.max_header_bytes = 1024;
  c.http.request_timeout_seconds = 0.1;
  c.http.idle_timeout_seconds = 86400;
  c.http.max_json_depth = 1000;
  EXPECT_EQ(Error(c), "OK");
  c.http.max_connections = 1'000'000;
  c.http.max_header_bytes = 1 << 20;
  c.http.request_timeout_seconds = 3600;
  c.http.idle_timeout_seconds = 0.1;
  c.http.max_json_depth = 2;
  EXPECT_EQ(Error(c), "OK");
}

TEST(ConfigValidateTest, HttpListenIsHostAndPort) {
  ServerConfig c = Valid();
  for (const char* bad : {"8080", ":8080", "host:", "host:65536", "unix:/tmp/http.sock"}) {
    c.http.listen = bad;
    EXPECT_EQ(Error(c),
              std::string("http.listen must be HOST:PORT with PORT 0..65535, got '") + bad + "'");
  }
}

TEST(ConfigValidateTest, Addresses) {
  ServerConfig c = Valid();
  c.tls.allow_plaintext = true;  // the addresses' form only; the security rules are below
  for (const char* good : {"0.0.0.0:50051", "localhost:0", "[::]:50051", "unix:/tmp/s.sock"}) {
    c.server.listen = good;
    EXPECT_EQ(Error(c), "OK") << good;
  }
  for (const char* bad : {"50051", ":50051", "host:", "host:65536", "host:http", "unix:"}) {
    c.server.listen = bad;
    EXPECT_EQ(Error(c),
              std::string("server.listen must be HOST:PORT with PORT 0..65535 or unix:PATH, "
                          "got '") +
                  bad + "'");
  }
  c = Valid();
  c.metrics.listen = "unix:/tmp/metrics.sock";
  EXPECT_EQ(Error(c),
            "metrics.listen must be HOST:PORT with PORT 0..65535, got 'unix:/tmp/metrics.sock'");
}

TEST(ConfigValidateTest, ModelPathIsRequired) {
  ServerConfig c;
  EXPECT_EQ(Error(c), "model.path is required (export one with python -m model.export)");
  EXPECT_TRUE(Validate(c, {.check_required = false}).ok());
}

TEST(ConfigValidateTest, ReportsEveryBadKeyOnItsOwnLine) {
  ServerConfig c;
  c.batching.max_batch_size = 0;
  c.logging.format = "xml";
  EXPECT_EQ(Error(c),
            "model.path is required (export one with python -m model.export)\n"
            "batching.max_batch_size must be between 1 and 1024, got 0\n"
            "logging.format must be one of text, json; got 'xml'");
}

}  // namespace
}  // namespace dinov3::config
