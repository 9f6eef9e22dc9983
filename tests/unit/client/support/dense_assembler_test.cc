// client/cpp/dense_assembler: compact dense grids keep their per-patch scales in row order, and
// hostile headers and chunks are refused before they can overflow or exhaust memory.
#include "client/cpp/dense_assembler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dinov3::client {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// An INT8 chunk of a 3 x 2 grid with dim 2: `rows` rows from `row_start`, byte value and scale
// of each patch = its index in the grid.
v1::DenseChunk Int8Chunk(int row_start, int rows) {
  v1::DenseChunk chunk;
  chunk.set_grid_height(3);
  chunk.set_grid_width(2);
  chunk.set_dim(2);
  chunk.set_dtype(v1::INT8);
  chunk.set_row_start(row_start);
  v1::Tensor* tensor = chunk.mutable_rows();
  tensor->set_dtype(v1::INT8);
  for (const int64_t dim : {rows, 2, 2}) tensor->add_shape(dim);
  std::string data;
  for (int patch = row_start * 2; patch < (row_start + rows) * 2; ++patch) {
    data += std::string(2, static_cast<char>(patch));
    tensor->add_scales(static_cast<float>(patch));
  }
  tensor->set_data(data);
  return chunk;
}

TEST(DenseAssemblerTest, Int8ScalesFollowTheirRowsInAnyChunkOrder) {
  DenseAssembler assembler;
  ASSERT_TRUE(assembler.Add(Int8Chunk(2, 1)).ok());
  ASSERT_TRUE(assembler.Add(Int8Chunk(0, 2)).ok());
  absl::StatusOr<v1::Tensor> grid = assembler.Finish();
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_THAT(grid->scales(), ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_EQ(grid->data(), std::string({0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
}

TEST(DenseAssemblerTest, AnEmptyFirstChunkStillSizesTheScalesFromTheDtype) {
  DenseAssembler assembler;
  ASSERT_TRUE(assembler.Add(Int8Chunk(0, 0)).ok());  // valid: no rows, no scales
  ASSERT_TRUE(assembler.Add(Int8Chunk(0, 3)).ok());
  absl::StatusOr<v1::Tensor> grid = assembler.Finish();
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->scales_size(), 6);
}

TEST(DenseAssemblerTest, AHeaderAnnouncingAHugeGridIsRefusedBeforeAllocating) {
  v1::DenseChunk chunk = Int8Chunk(0, 0);
  chunk.set_grid_height(65535);
  chunk.set_grid_width(65535);
  chunk.set_dim(4096);
  chunk.set_dtype(v1::FLOAT32);
  chunk.mutable_rows()->set_dtype(v1::FLOAT32);
  DenseAssembler assembler;
  EXPECT_THAT(assembler.Add(chunk).message(), HasSubstr("above the"));
}

}  // namespace
}  // namespace dinov3::client
