#include "model/runtime/model_metadata.h"

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dinov3::model {
namespace {

using Json = nlohmann::json;

absl::Status FieldError(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrCat(kMetadataFileName, ": field '", field, "' ", problem));
}

// Reads `json[field]` into `out`, or explains what was wrong.
template <typename T>
absl::Status Read(const Json& json, absl::string_view field, T& out) {
  auto it = json.find(field);
  if (it == json.end()) return FieldError(field, "is missing");
  try {
    out = it->get<T>();
  } catch (const Json::exception& e) {
    return FieldError(field, absl::StrCat("has the wrong type (", e.what(), ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckPositive(absl::string_view field, int value) {
  if (value <= 0) return FieldError(field, absl::StrCat("must be positive, got ", value));
  return absl::OkStatus();
}

absl::Status ReadFields(const Json& json, ModelMetadata& m) {
  int version = 0;
  std::array<int, 2> size{};
  Json source;
  for (absl::Status s :
       {Read(json, "format_version", version), Read(json, "variant", m.variant),
        Read(json, "embed_dim", m.embed_dim), Read(json, "patch_size", m.patch_size),
        Read(json, "num_registers", m.num_registers), Read(json, "num_heads", m.num_heads),
        Read(json, "depth", m.depth), Read(json, "ffn", m.ffn),
        Read(json, "default_input_size", size), Read(json, "image_mean", m.image_mean),
        Read(json, "image_std", m.image_std), Read(json, "weights_dataset", m.weights_dataset),
        Read(json, "dtype", m.dtype), Read(json, "source", source),
        Read(json, "untrained", m.untrained), Read(json, "weights_sha256", m.weights_sha256),
        Read(json, "torch_version", m.torch_version)}) {
    if (!s.ok()) return s;
  }
  if (version != kMetadataFormatVersion) {
    return FieldError("format_version", absl::StrCat("is ", version, ", this runtime reads ",
                                                     kMetadataFormatVersion));
  }
  m.default_height = size[0];
  m.default_width = size[1];
  if (absl::Status s = Read(source, "kind", m.source_kind); !s.ok()) {
    return FieldError("source.kind", "is missing");
  }
  return absl::OkStatus();
}

absl::Status Validate(const ModelMetadata& m) {
  for (auto [field, value] : {std::pair{"embed_dim", m.embed_dim},
                              {"patch_size", m.patch_size},
                              {"num_heads", m.num_heads},
                              {"depth", m.depth},
                              {"default_input_size[0]", m.default_height},
                              {"default_input_size[1]", m.default_width}}) {
    if (absl::Status s = CheckPositive(field, value); !s.ok()) return s;
  }
  if (m.num_registers < 0) return FieldError("num_registers", "must not be negative");
  if (m.embed_dim % m.num_heads != 0) {
    return FieldError("num_heads",
                      absl::StrCat(m.num_heads, " does not divide embed_dim ", m.embed_dim));
  }
  if (m.default_height % m.patch_size != 0 || m.default_width % m.patch_size != 0) {
    return FieldError("default_input_size", "is not a multiple of patch_size");
  }
  if (m.dtype != "float32" && m.dtype != "float16" && m.dtype != "bfloat16" && m.dtype != "int8") {
    return FieldError("dtype", absl::StrCat("is '", m.dtype,
                                            "', expected float32, float16, bfloat16 or int8"));
  }
  for (float s : m.image_std) {
    if (!(s > 0)) return FieldError("image_std", "must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelMetadata> ParseModelMetadata(absl::string_view json_text) {
  Json json = Json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(kMetadataFileName, " is not a JSON object"));
  }
  ModelMetadata metadata;
  if (absl::Status s = ReadFields(json, metadata); !s.ok()) return s;
  if (absl::Status s = Validate(metadata); !s.ok()) return s;
  metadata.compute_dtype = metadata.dtype;
  return metadata;
}

std::string DescribeModel(const ModelMetadata& m) {
  return absl::StrCat(m.variant, " depth=", m.depth, " dim=", m.embed_dim, " heads=", m.num_heads,
                      " registers=", m.num_registers, " patch=", m.patch_size, " dtype=", m.compute_dtype,
                      m.compute_dtype == m.dtype ? "" : absl::StrCat(" (export ", m.dtype, ")"),
                      " input=", m.default_height, "x", m.default_width, " weights=", m.source_kind,
                      "/", m.weights_dataset, " sha256=", m.weights_sha256.substr(0, 12),
                      m.untrained ? " UNTRAINED (random weights)" : "");
}

}  // namespace dinov3::model
