#include "model/runtime/model_runtime.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/cuda.h>

#include <filesystem>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dinov3::model {
namespace {

std::string Shape(const torch::Tensor& t) { return absl::StrJoin(t.sizes(), "x"); }

// First line of a LibTorch error: the rest is a C++ backtrace nobody should have to read.
std::string FirstLine(const std::exception& e) {
  absl::string_view what = e.what();
  return std::string(what.substr(0, what.find('\n')));
}

constexpr char kCausePayload[] = "type.dinov3/model-error-cause";

// The last non-empty line of a TorchScript error: the model's own exception, e.g.
// "RuntimeError: ...", below the interpreter's backtrace. At most 300 bytes.
std::string LastLine(const std::exception& e) {
  absl::string_view what = absl::StripTrailingAsciiWhitespace(e.what());
  return std::string(what.substr(what.rfind('\n') + 1).substr(0, 300));
}

absl::StatusOr<torch::Device> ParseDevice(absl::string_view name) {
  try {
    torch::Device device{std::string(name)};
    if (device.is_cuda() && !device.has_index()) device = torch::Device(torch::kCUDA, 0);
    if (device.is_cuda()) {
      const int count = static_cast<int>(torch::cuda::device_count());
      if (count == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("device '", name, "' requested but no CUDA device is available"));
      }
      if (device.has_index() && device.index() >= count) {
        return absl::FailedPreconditionError(absl::StrCat("device '", name, "' requested but only ",
                                                          count, " CUDA device(s) exist"));
      }
    } else if (!device.is_cpu()) {
      return absl::InvalidArgumentError(absl::StrCat("unsupported device '", name, "'"));
    }
    return device;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad device '", name, "' (expected cpu, cuda or cuda:N)"));
  }
}

absl::StatusOr<torch::ScalarType> ParseDtype(absl::string_view name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float16") return torch::kFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("compute dtype '", name, "' is not float32, bfloat16 or float16"));
}

// Converts the parameters (not the buffers) of `module` to `dtype`, in place, the way
// Module::to converts each tensor.
void ConvertParameters(torch::jit::Module& module, torch::ScalarType dtype) {
  for (at::Tensor parameter : module.parameters()) {
    if (parameter.is_floating_point()) parameter.set_data(parameter.to(dtype));
  }
}

// The tensor `key` of a forward's dict (FailedPrecondition when it has none).
absl::StatusOr<torch::Tensor> OutputTensor(const c10::Dict<c10::IValue, c10::IValue>& dict,
                                           const char* key) {
  auto it = dict.find(key);
  if (it == dict.end() || !it->value().isTensor()) {
    return absl::FailedPreconditionError(absl::StrCat("forward output has no tensor '", key, "'"));
  }
  return it->value().toTensor();
}

// Checks the forward result against the metadata and the batch/grid it was run on; `layers`
// blocks' outputs too when not 0.
absl::StatusOr<ModelOutputs> UnpackOutputs(const c10::IValue& result, const ModelMetadata& m,
                                           int64_t batch, int64_t patches, int64_t layers) {
  if (!result.isGenericDict()) {
    return absl::FailedPreconditionError("forward did not return a dict");
  }
  const c10::Dict<c10::IValue, c10::IValue> dict = result.toGenericDict();
  ModelOutputs out;
  std::vector<std::pair<const char*, torch::Tensor*>> fields = {
      {"cls", &out.cls}, {"registers", &out.registers}, {"patch_tokens", &out.patch_tokens}};
  if (layers > 0) {
    fields.insert(fields.end(), {{"layer_cls", &out.layer_cls},
                                 {"layer_registers", &out.layer_registers},
                                 {"layer_patch_tokens", &out.layer_patch_tokens}});
  }
  for (const auto& [key, field] : fields) {
    absl::StatusOr<torch::Tensor> tensor = OutputTensor(dict, key);
    if (!tensor.ok()) return tensor.status();
    *field = *std::move(tensor);
  }
  const int64_t d = m.embed_dim;
  std::vector<std::pair<const torch::Tensor*, std::vector<int64_t>>> expected = {
      {&out.cls, {batch, d}},
      {&out.registers, {batch, m.num_registers, d}},
      {&out.patch_tokens, {batch, patches, d}}};
  if (layers > 0) {
    expected.push_back({&out.layer_cls, {batch, layers, d}});
    expected.push_back({&out.layer_registers, {batch, layers, m.num_registers, d}});
    expected.push_back({&out.layer_patch_tokens, {batch, layers, patches, d}});
  }
  for (const auto& [tensor, shape] : expected) {
    if (tensor->sizes() != c10::IntArrayRef(shape)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "module output shape ", Shape(*tensor), " does not match the metadata (expected ",
          absl::StrJoin(shape, "x"), " for ", m.variant, " with embed_dim ", d, " and ",
          m.num_registers, " registers)"));
    }
  }
  return out;
}

}  // namespace

std::string ErrorCause(const absl::Status& status) {
  const auto cause = status.GetPayload(kCausePayload);
  return cause.has_value() ? std::string(*cause) : "";
}

ModelRuntime::ModelRuntime(torch::jit::Module module, ModelMetadata metadata, torch::Device device)
    : module_(std::move(module)), metadata_(std::move(metadata)), device_(device) {}

absl::StatusOr<ModelMetadata> ModelRuntime::ReadMetadata(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat("model file '", path, "' does not exist"));
  }
  const std::string record = absl::StrCat("extra/", kMetadataFileName);
  std::string json;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord(record)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", path, "' has no ", kMetadataFileName, " metadata: not a DINOv3 export ",
          "(a checkpoint or another archive? export it with `python -m model.export`)"));
    }
    auto [data, size] = reader.getRecord(record);
    json.assign(static_cast<const char*>(data.get()), size);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a loadable TorchScript archive: ", FirstLine(e)));
  }
  absl::StatusOr<ModelMetadata> metadata = ParseModelMetadata(json);
  if (!metadata.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "': ", metadata.status().message()));
  }
  return metadata;
}

absl::StatusOr<std::unique_ptr<ModelRuntime>> ModelRuntime::Load(const std::string& path,
                                                                 absl::string_view device_name,
                                                                 bool probe,
                                                                 absl::string_view compute_dtype) {
  absl::StatusOr<ModelMetadata> metadata = ReadMetadata(path);
  if (!metadata.ok()) return metadata.status();
  absl::StatusOr<torch::Device> device = ParseDevice(device_name);
  if (!device.ok()) return device.status();
  std::optional<torch::ScalarType> convert_to;
  if (!compute_dtype.empty()) {
    absl::StatusOr<torch::ScalarType> dtype = ParseDtype(compute_dtype);
    if (!dtype.ok()) return dtype.status();
    convert_to = *dtype;
  }
  if (metadata->dtype == "int8") {
    if (!device->is_cpu()) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", path,
                       "' is an int8 export, which runs on CPU only (its Linear layers are "
                       "quantised for x86 CPUs); for device '",
                       device_name, "' export in float16 or bfloat16"));
    }
    if (convert_to.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path,
                       "' is an int8 export (Linear layers int8, the rest float32) and computes "
                       "only as exported: compute dtype ",
                       compute_dtype,
                       " needs a float export "
                       "(python -m model.export --dtype ",
                       compute_dtype, ")"));
    }
  }

  torch::jit::Module module;
  try {
    module = torch::jit::load(path, *device);
  } catch (const c10::OutOfMemoryError& e) {
    return absl::ResourceExhaustedError(absl::StrCat("'", path,
                                                     "' does not fit in the free memory of device ",
                                                     device_name, ": ", FirstLine(e)));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is not a loadable TorchScript archive: ", FirstLine(e)));
  }
  module.eval();
  metadata->has_forward_layers = module.find_method("forward_layers").has_value();
  if (convert_to.has_value() && compute_dtype != metadata->dtype) {
    ConvertParameters(module, *convert_to);
    metadata->compute_dtype = std::string(compute_dtype);
  }
  std::unique_ptr<ModelRuntime> runtime(
      new ModelRuntime(std::move(module), *std::move(metadata), *device));

  if (!probe) return runtime;
  // Probe: one patch per image, to prove that module and metadata agree.
  const int p = runtime->metadata_.patch_size;
  absl::StatusOr<ModelOutputs> result = runtime->Forward(torch::zeros({1, 3, p, p}));
  if (!result.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", path, "' failed its probe forward: ", result.status().message()));
  }
  return runtime;
}

absl::Status ModelRuntime::CheckInput(const torch::Tensor& x) const {
  if (!x.defined() || x.dim() != 4 || x.size(1) != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("pixel_values must be [B,3,H,W], got ", x.defined() ? Shape(x) : "undefined"));
  }
  if (!x.is_floating_point()) {
    return absl::InvalidArgumentError("pixel_values must be a floating point tensor");
  }
  const int64_t p = metadata_.patch_size;
  if (x.size(0) == 0 || x.size(2) == 0 || x.size(3) == 0 || x.size(2) % p != 0 ||
      x.size(3) % p != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pixel_values ", Shape(x), ": batch must be non-empty and H, W positive multiples of ", p));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelOutputs> ModelRuntime::Forward(const torch::Tensor& pixel_values,
                                                   absl::Span<const int> layers,
                                                   bool layer_norm) const {
  if (absl::Status s = CheckInput(pixel_values); !s.ok()) return s;
  if (!layers.empty() && !metadata_.has_forward_layers) {
    return absl::FailedPreconditionError(
        "this export has no forward_layers (intermediate layers): export it again with "
        "python -m model.export");
  }
  for (const int layer : layers) {
    if (layer < 0 || layer >= metadata_.depth) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", layer, " is outside the model's blocks 0..", metadata_.depth - 1));
    }
  }
  const int64_t p = metadata_.patch_size;
  const int64_t patches = (pixel_values.size(2) / p) * (pixel_values.size(3) / p);
  c10::IValue result;
  try {
    c10::InferenceMode guard;
    if (layers.empty()) {
      result = module_.forward({pixel_values.to(device_)});
    } else {
      result = module_.get_method("forward_layers")(
          {pixel_values.to(device_),
           c10::List<int64_t>(std::vector<int64_t>(layers.begin(), layers.end())), layer_norm});
    }
  } catch (const std::exception& e) {
    // The TorchScript interpreter re-throws a c10::OutOfMemoryError as a plain error whose
    // first line names the interpreter; the allocator's message is further down.
    if (absl::StrContains(e.what(), "out of memory")) {
      return absl::ResourceExhaustedError(
          absl::StrCat("out of device memory running ", Shape(pixel_values)));
    }
    absl::Status failed = absl::InternalError(
        absl::StrCat("forward failed on ", Shape(pixel_values), ": ", FirstLine(e)));
    failed.SetPayload(kCausePayload, absl::Cord(LastLine(e)));
    return failed;
  }
  return UnpackOutputs(result, metadata_, pixel_values.size(0), patches,
                       static_cast<int64_t>(layers.size()));
}

}  // namespace dinov3::model
