// dinov3-bench: load generator for dinov3-server's front doors and the peers of the benchmark
// suite. --protocol picks the door: grpc (dinov3.v1), http (LitServe's POST /predict),
// oip-grpc / oip-rest (Open Inference Protocol ModelInfer, REST with the binary extension, e.g.
// MLServer) or openai (POST /v1/embeddings); --target is HOST:PORT of whatever it talks to.
// Sweeps closed-loop concurrencies or open-loop Poisson rates, measures each point in windows
// until they agree (load_driver.h), prints a table and optionally JSON.
// Exit status: 0 when the sweep ran (request errors are reported, not fatal), 1 when the
// target cannot be used, 2 for bad flags.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/bench/bench_report.h"
#include "client/bench/grpc_transport.h"
#include "client/bench/http_transport.h"
#include "client/bench/load_driver.h"
#include "client/bench/oip_grpc_transport.h"
#include "client/bench/oip_rest_transport.h"
#include "client/bench/openai_transport.h"
#include "client/bench/request_set.h"
#include "client/cpp/commands.h"
#include "client/cpp/tensor_decode.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "server address, HOST:PORT");
ABSL_FLAG(std::string, protocol, "grpc",
          "grpc (dinov3.v1: dinov3-server, the gRPC peer), http (LitServe POST --http_path), "
          "oip-grpc (KServe v2 ModelInfer), oip-rest (KServe v2 POST /v2/models/--model/infer, "
          "binary tensors; needs --model) or openai (POST /v1/embeddings; needs --images)");
ABSL_FLAG(std::string, http_path, "/predict", "path the http protocol POSTs to");
ABSL_FLAG(std::string, openai_encoding, "base64",
          "--protocol=openai: encoding_format of the answer, base64 or float");
ABSL_FLAG(std::string, method, "embed", "embed (unary), stream (StreamEmbed) or dense (EmbedDense)");
ABSL_FLAG(std::string, concurrency, "", "closed loop: comma-separated caller counts, e.g. 1,4,16");
ABSL_FLAG(std::string, rate, "", "open loop: comma-separated request rates per second (Poisson)");
ABSL_FLAG(std::string, image_size, "224x224", "size of the generated random RGB8 image, sent raw");
ABSL_FLAG(std::string, images, "", "comma-separated image files to send encoded instead");
ABSL_FLAG(std::string, resize, "", "Preprocess height/width as WIDTHxHEIGHT ('' = the model's)");
ABSL_FLAG(int, images_per_request, 1, "images in each Embed/StreamEmbed request");
ABSL_FLAG(std::string, outputs, "", "outputs: cls,pooled,patch_tokens,registers ('' = cls,pooled)");
ABSL_FLAG(std::string, dtype, "float32", "output dtype: float32, float16 or bfloat16");
ABSL_FLAG(std::string, model, "",
          "served model(s): NAME, or a weighted mix NAME:W,NAME:W (e.g. small:1,large:1) sent "
          "in exactly those shares ('' = the server's default)");
ABSL_FLAG(double, warmup_seconds, 2, "unmeasured load before each point's windows");
ABSL_FLAG(double, window_seconds, 5, "shortest measurement window");
ABSL_FLAG(int64_t, min_window_calls, 8, "a window also lasts until this many calls ended");
ABSL_FLAG(int, stable_windows, 3, "consecutive windows that must agree");
ABSL_FLAG(double, stability, 0.10, "how closely (relative) their throughputs must agree");
ABSL_FLAG(double, max_seconds, 60, "most measuring time per point, stable or not");
ABSL_FLAG(int, max_outstanding, 256, "open loop: most requests in flight at once");
ABSL_FLAG(double, timeout_seconds, 120, "deadline of each call");
ABSL_FLAG(uint64_t, seed, 1, "seed of the generated image and the arrival times");
ABSL_FLAG(std::string, json, "", "write the results as JSON to this file ('-' = stdout)");
ABSL_FLAG(bool, progress, true, "print a line per measurement window to stderr");

namespace dinov3::bench {
namespace {

struct Plan {
  RunDescription description;
  RequestSpec spec;
  std::vector<LoadShape> shapes;
};

absl::StatusOr<std::vector<double>> ParseList(const std::string& flag, const std::string& text) {
  std::vector<double> values;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    double value = 0;
    if (!absl::SimpleAtod(item, &value) || !(value > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", item, "' is not a positive number"));
    }
    values.push_back(value);
  }
  return values;
}

absl::StatusOr<std::vector<LoadShape>> ParseShapes() {
  const std::string concurrency = absl::GetFlag(FLAGS_concurrency);
  const std::string rate = absl::GetFlag(FLAGS_rate);
  if (!concurrency.empty() && !rate.empty()) {
    return absl::InvalidArgumentError("give --concurrency (closed loop) or --rate (open), not both");
  }
  const bool open = !rate.empty();
  absl::StatusOr<std::vector<double>> values =
      open ? ParseList("rate", rate) : ParseList("concurrency", concurrency.empty() ? "1" : concurrency);
  if (!values.ok()) return values.status();
  std::vector<LoadShape> shapes;
  for (const double value : *values) {
    LoadShape shape{.max_outstanding = absl::GetFlag(FLAGS_max_outstanding),
                    .seed = absl::GetFlag(FLAGS_seed)};
    if (open) {
      shape.rate = value;
    } else if (value != static_cast<int>(value) || value > 4096) {
      return absl::InvalidArgumentError("--concurrency values must be whole numbers up to 4096");
    } else {
      shape.concurrency = static_cast<int>(value);
    }
    shapes.push_back(shape);
  }
  return shapes;
}

absl::StatusOr<Plan> ParseFlags() {
  Plan plan;
  RunDescription& d = plan.description;
  d.target = absl::GetFlag(FLAGS_target);
  d.protocol = absl::GetFlag(FLAGS_protocol);
  d.method = absl::GetFlag(FLAGS_method);
  if (d.protocol != "grpc" && d.protocol != "http" && d.protocol != "oip-grpc" &&
      d.protocol != "oip-rest" && d.protocol != "openai") {
    return absl::InvalidArgumentError(
        "--protocol must be grpc, http, oip-grpc, oip-rest or openai");
  }
  if (d.method != "embed" && d.method != "stream" && d.method != "dense") {
    return absl::InvalidArgumentError("--method must be embed, stream or dense");
  }
  if (d.protocol != "grpc" && d.method != "embed") {
    return absl::InvalidArgumentError(
        absl::StrCat("--protocol=", d.protocol, " supports --method=embed only"));
  }
  const std::string encoding = absl::GetFlag(FLAGS_openai_encoding);
  if (encoding != "base64" && encoding != "float") {
    return absl::InvalidArgumentError("--openai_encoding must be base64 or float");
  }
  if (d.protocol == "oip-rest" && absl::GetFlag(FLAGS_model).empty()) {
    return absl::InvalidArgumentError(
        "--protocol=oip-rest needs --model: the model's name is part of the path");
  }
  if (d.protocol == "openai" && absl::GetFlag(FLAGS_images).empty()) {
    return absl::InvalidArgumentError(
        "--protocol=openai sends image files as data URLs: give --images (raw pixels cannot "
        "be sent)");
  }
  absl::StatusOr<std::vector<LoadShape>> shapes = ParseShapes();
  if (!shapes.ok()) return shapes.status();
  plan.shapes = *shapes;
  d.mode = plan.shapes.front().rate > 0 ? "open" : "closed";
  if (d.mode == "open" && d.method == "stream") {
    return absl::InvalidArgumentError("--method=stream runs closed loop only (use --concurrency)");
  }
  RequestSpec& spec = plan.spec;
  spec.seed = absl::GetFlag(FLAGS_seed);
  spec.images_per_request = absl::GetFlag(FLAGS_images_per_request);
  if (spec.images_per_request < 1 || spec.images_per_request > 4096) {
    return absl::InvalidArgumentError("--images_per_request must be 1 to 4096");
  }
  spec.image_files = absl::StrSplit(absl::GetFlag(FLAGS_images), ',', absl::SkipEmpty());
  absl::StatusOr<std::pair<int, int>> size = ParseSize(absl::GetFlag(FLAGS_image_size));
  if (!size.ok()) return size.status();
  std::tie(spec.width, spec.height) = *size;
  if (!absl::GetFlag(FLAGS_resize).empty()) {
    absl::StatusOr<std::pair<int, int>> resize = ParseSize(absl::GetFlag(FLAGS_resize));
    if (!resize.ok()) return resize.status();
    std::tie(spec.resize_width, spec.resize_height) = *resize;
  }
  absl::StatusOr<std::vector<v1::Output>> outputs = client::ParseOutputs(absl::GetFlag(FLAGS_outputs));
  if (!outputs.ok()) return outputs.status();
  spec.outputs = *outputs;
  absl::StatusOr<v1::DType> dtype = client::ParseDType(absl::GetFlag(FLAGS_dtype));
  if (!dtype.ok()) return dtype.status();
  spec.dtype = *dtype;
  absl::StatusOr<std::vector<std::pair<std::string, int>>> models =
      ParseModelMix(absl::GetFlag(FLAGS_model));
  if (!models.ok()) return models.status();
  spec.models = *std::move(models);
  d.model = absl::GetFlag(FLAGS_model);
  d.images_per_request = spec.images_per_request;
  d.image = spec.image_files.empty()
                ? absl::StrCat(spec.width, "x", spec.height, " raw")
                : absl::StrCat("files: ", absl::StrJoin(spec.image_files, ","));
  for (const v1::Output output : spec.outputs) {
    d.outputs.push_back(absl::AsciiStrToLower(v1::Output_Name(output)));
  }
  if (d.outputs.empty()) d.outputs = {"cls", "pooled"};
  d.dtype = client::DTypeName(spec.dtype);
  return plan;
}

absl::StatusOr<std::unique_ptr<Transport>> MakeTransport(const Plan& plan) {
  absl::StatusOr<std::vector<v1::Image>> images = LoadImages(plan.spec);
  if (!images.ok()) return images.status();
  const double timeout = absl::GetFlag(FLAGS_timeout_seconds);
  if (plan.description.protocol == "http") {
    absl::StatusOr<std::vector<std::string>> bodies = MakeHttpBodies(plan.spec, *images);
    if (!bodies.ok()) return bodies.status();
    return MakeHttpTransport({plan.description.target, absl::GetFlag(FLAGS_http_path), timeout},
                             *std::move(bodies));
  }
  if (plan.description.protocol == "oip-rest") {
    return MakeOipRestTransport({.address = plan.description.target, .timeout_seconds = timeout},
                                plan.spec, *images);
  }
  if (plan.description.protocol == "openai") {
    const OpenAIEncoding encoding = absl::GetFlag(FLAGS_openai_encoding) == "float"
                                        ? OpenAIEncoding::kFloat
                                        : OpenAIEncoding::kBase64;
    return MakeOpenAITransport({.address = plan.description.target, .timeout_seconds = timeout},
                               plan.spec, *images, encoding);
  }
  if (plan.description.protocol == "oip-grpc") {
    absl::StatusOr<std::vector<inference::ModelInferRequest>> requests =
        MakeOipGrpcRequests(plan.spec, *images);
    if (!requests.ok()) return requests.status();
    return MakeOipGrpcTransport({.address = plan.description.target, .timeout_seconds = timeout},
                                *std::move(requests));
  }
  const GrpcMethod method = plan.description.method == "stream"  ? GrpcMethod::kStream
                            : plan.description.method == "dense" ? GrpcMethod::kDense
                                                                 : GrpcMethod::kEmbed;
  return MakeGrpcTransport({.address = plan.description.target, .timeout_seconds = timeout}, method,
                           MakeEmbedRequests(plan.spec, *images),
                           MakeDenseRequests(plan.spec, *images));
}

bool WriteJson(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::cout << text;
    return true;
  }
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

int Run() {
  absl::StatusOr<Plan> plan = ParseFlags();
  if (!plan.ok()) {
    std::cerr << "dinov3-bench: " << plan.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Transport>> transport = MakeTransport(*plan);
  if (!transport.ok()) {
    std::cerr << "dinov3-bench: " << transport.status().message() << "\n";
    return transport.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  const WindowPlan windows{.warmup_seconds = absl::GetFlag(FLAGS_warmup_seconds),
                           .window_seconds = absl::GetFlag(FLAGS_window_seconds),
                           .min_window_calls = absl::GetFlag(FLAGS_min_window_calls),
                           .stable_windows = absl::GetFlag(FLAGS_stable_windows),
                           .stability = absl::GetFlag(FLAGS_stability),
                           .max_seconds = absl::GetFlag(FLAGS_max_seconds)};
  const bool progress = absl::GetFlag(FLAGS_progress);
  std::ostream& table = absl::GetFlag(FLAGS_json) == "-" ? std::cerr : std::cout;
  table << plan->description.target << " " << plan->description.protocol << " "
        << plan->description.method << ", " << plan->description.image << " x"
        << plan->description.images_per_request << "\n"
        << TableHeader();
  std::vector<PointResult> results;
  for (const LoadShape& shape : plan->shapes) {
    absl::StatusOr<PointResult> point = RunPoint(
        **transport, shape, windows, [&](int index, const Window& window) {
          if (progress) std::cerr << "  " << ProgressLine(shape, index, window) << std::endl;
        });
    if (!point.ok()) {
      std::cerr << "dinov3-bench: " << point.status().message() << "\n";
      return point.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
    }
    table << TableRow(*point) << std::flush;
    results.push_back(*std::move(point));
  }
  const std::string json_path = absl::GetFlag(FLAGS_json);
  if (!json_path.empty() && !WriteJson(json_path, ToJsonText(plan->description, results))) {
    std::cerr << "dinov3-bench: cannot write " << json_path << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace dinov3::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load generator for dinov3-server: closed-loop concurrency or open-loop rate sweeps.\n"
      "Example: dinov3-bench --target=127.0.0.1:50051 --concurrency=1,4,16 --json=out.json");
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() > 1) {
    std::cerr << "dinov3-bench: unexpected argument '" << args[1] << "' (all options are flags)\n";
    return 2;
  }
  return dinov3::bench::Run();
}
