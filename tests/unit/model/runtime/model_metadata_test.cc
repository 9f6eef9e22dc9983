// ParseModelMetadata: valid metadata round-trips; every defect names its field.
#include "model/runtime/model_metadata.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace dinov3::model {
namespace {

using ::testing::HasSubstr;

nlohmann::json Valid() {
  return {{"format_version", 1},
          {"variant", "vitb16"},
          {"embed_dim", 768},
          {"patch_size", 16},
          {"num_registers", 4},
          {"num_heads", 12},
          {"depth", 12},
          {"ffn", "mlp"},
          {"default_input_size", {224, 224}},
          {"image_mean", {0.485, 0.456, 0.406}},
          {"image_std", {0.229, 0.224, 0.225}},
          {"weights_dataset", "lvd1689m"},
          {"dtype", "float16"},
          {"source", {{"kind", "huggingface"}, {"path", "/x"}}},
          {"untrained", false},
          {"weights_sha256", "abcdef0123456789"},
          {"torch_version", "2.11.0"}};
}

TEST(ModelMetadata, ParsesValidMetadata) {
  auto m = ParseModelMetadata(Valid().dump());
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->variant, "vitb16");
  EXPECT_EQ(m->embed_dim, 768);
  EXPECT_EQ(m->default_height, 224);
  EXPECT_FLOAT_EQ(m->image_std[2], 0.225f);
  EXPECT_EQ(m->dtype, "float16");
  EXPECT_EQ(m->source_kind, "huggingface");
  EXPECT_THAT(DescribeModel(*m), HasSubstr("vitb16 depth=12 dim=768"));
  EXPECT_THAT(DescribeModel(*m), ::testing::Not(HasSubstr("UNTRAINED")));
}

struct Defect {
  std::string name;
  void (*edit)(nlohmann::json&);
  std::string message;
};

void PrintTo(const Defect& defect, std::ostream* os) { *os << defect.name; }

class ModelMetadataDefect : public ::testing::TestWithParam<Defect> {};

TEST_P(ModelMetadataDefect, IsRejectedWithFieldName) {
  nlohmann::json json = Valid();
  GetParam().edit(json);
  auto m = ParseModelMetadata(json.dump());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(m.status().message(), HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    All, ModelMetadataDefect,
    ::testing::Values(
        Defect{"missing", [](nlohmann::json& j) { j.erase("depth"); }, "'depth' is missing"},
        Defect{"type", [](nlohmann::json& j) { j["embed_dim"] = "768"; }, "'embed_dim' has the"},
        Defect{"version", [](nlohmann::json& j) { j["format_version"] = 9; }, "'format_version'"},
        Defect{"dtype", [](nlohmann::json& j) { j["dtype"] = "int4"; }, "'dtype' is 'int4'"},
        Defect{"heads", [](nlohmann::json& j) { j["num_heads"] = 7; }, "'num_heads' 7 does not"},
        Defect{"size",
               [](nlohmann::json& j) {
                 j["default_input_size"] = {224, 100};
               },
               "'default_input_size' is not a multiple"},
        Defect{"std",
               [](nlohmann::json& j) {
                 j["image_std"] = {1, 0, 1};
               },
               "'image_std'"},
        Defect{"source", [](nlohmann::json& j) { j["source"] = nlohmann::json::object(); },
               "'source.kind' is missing"}),
    [](const auto& info) { return info.param.name; });

TEST(ModelMetadata, RejectsNonJson) {
  EXPECT_EQ(ParseModelMetadata("not json").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseModelMetadata("[1]").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace dinov3::model
