// Reassembles the DenseChunk stream of EmbedDense into one [grid_height, grid_width, dim] tensor.
//
// Chunks may arrive in any order; each carries the same header (grid size, dim, dtype) and a
// [rows, grid_width, dim] tensor (with one scale per patch for INT8 and UINT8) placed at
// row_start. The assembler copies the wire bytes and scales unchanged, so the result is bitwise
// the server's output. Errors are InvalidArgument: header
// that changes between chunks, malformed rows tensor, rows out of range or sent twice, and (in
// Finish) rows never sent or no chunk at all. Not thread-safe; one instance per stream.
#ifndef DINOV3_CLIENT_CPP_DENSE_ASSEMBLER_H_
#define DINOV3_CLIENT_CPP_DENSE_ASSEMBLER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dinov3/v1/embedding.pb.h"

namespace dinov3::client {

class DenseAssembler {
 public:
  // The most bytes (data and scales) a grid may take; a header announcing more is refused
  // before anything is allocated.
  static constexpr uint64_t kMaxDenseBytes = uint64_t{1} << 34;

  // Places the rows of `chunk`. On error the assembler is unchanged.
  absl::Status Add(const v1::DenseChunk& chunk);

  // The whole grid as a Tensor of the wire dtype with shape [grid_height, grid_width, dim].
  // Leaves the assembler empty.
  absl::StatusOr<v1::Tensor> Finish();

  int chunks() const { return chunks_; }

 private:
  absl::Status CheckHeader(const v1::DenseChunk& chunk) const;

  int chunks_ = 0;
  uint32_t grid_height_ = 0;
  uint32_t grid_width_ = 0;
  uint32_t dim_ = 0;
  v1::DType dtype_ = v1::FLOAT32;
  std::string data_;                // grid_height * grid_width vectors once started
  std::vector<float> scales_;       // INT8, UINT8: one per patch; empty otherwise
  std::vector<bool> row_received_;  // one flag per patch row
};

}  // namespace dinov3::client

#endif  // DINOV3_CLIENT_CPP_DENSE_ASSEMBLER_H_
