// Reassembly of EmbedDense chunks; see dense_assembler.h.
#include "client/cpp/dense_assembler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/cpp/tensor_decode.h"
#include "server/common/status_macros.h"

namespace dinov3::client {

absl::Status DenseAssembler::CheckHeader(const v1::DenseChunk& chunk) const {
  if (chunks_ == 0) {
    if (chunk.grid_height() == 0 || chunk.grid_width() == 0 || chunk.dim() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("dense chunk with an empty grid ",
                                                     chunk.grid_height(), "x", chunk.grid_width(),
                                                     "x", chunk.dim()));
    }
    if (VectorBytes(chunk.dtype(), 1) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("dense chunk dtype ", chunk.dtype()));
    }
    // Every factor is below 2^32: the product fits in 128 bits, checked in two steps.
    const uint64_t patches = uint64_t{chunk.grid_height()} * chunk.grid_width();
    const uint64_t vector_bytes = VectorBytes(chunk.dtype(), chunk.dim()) + sizeof(float);
    if (patches > kMaxDenseBytes / vector_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dense chunk header announces a ", chunk.grid_height(), "x", chunk.grid_width(), "x",
          chunk.dim(), " grid, above the ", kMaxDenseBytes, " bytes this client assembles"));
    }
    return absl::OkStatus();
  }
  if (chunk.grid_height() != grid_height_ || chunk.grid_width() != grid_width_ ||
      chunk.dim() != dim_ || chunk.dtype() != dtype_) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense chunk header changed: ", chunk.grid_height(), "x", chunk.grid_width(),
                     "x", chunk.dim(), " ", DTypeName(chunk.dtype()), " after ", grid_height_, "x",
                     grid_width_, "x", dim_, " ", DTypeName(dtype_)));
  }
  return absl::OkStatus();
}

absl::Status DenseAssembler::Add(const v1::DenseChunk& chunk) {
  RETURN_IF_ERROR(CheckHeader(chunk));
  const v1::Tensor& rows = chunk.rows();
  RETURN_IF_ERROR(ValidateTensor(rows));
  if (rows.dtype() != chunk.dtype() || rows.shape_size() != 3 ||
      rows.shape(1) != chunk.grid_width() || rows.shape(2) != chunk.dim()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense chunk at row ", chunk.row_start(), ": rows tensor is not [rows, ",
                     chunk.grid_width(), ", ", chunk.dim(), "] ", DTypeName(chunk.dtype())));
  }
  const uint64_t row_start = chunk.row_start();
  const uint64_t row_count = static_cast<uint64_t>(rows.shape(0));
  if (row_start + row_count > chunk.grid_height()) {
    return absl::InvalidArgumentError(absl::StrCat("dense chunk rows [", row_start, ", ",
                                                   row_start + row_count, ") exceed grid height ",
                                                   chunk.grid_height()));
  }
  const bool first = chunks_ == 0;
  if (!first &&
      std::any_of(row_received_.begin() + row_start, row_received_.begin() + row_start + row_count,
                  [](bool received) { return received; })) {
    return absl::InvalidArgumentError(
        absl::StrCat("dense chunk at row ", row_start, " repeats rows already received"));
  }
  if (first) {
    grid_height_ = chunk.grid_height();
    grid_width_ = chunk.grid_width();
    dim_ = chunk.dim();
    dtype_ = chunk.dtype();
    data_.assign(grid_width_ * VectorBytes(dtype_, dim_) * grid_height_, '\0');
    const bool scaled = dtype_ == v1::INT8 || dtype_ == v1::UINT8;  // ValidateTensor checked
    scales_.assign(scaled ? uint64_t{grid_width_} * grid_height_ : 0, 0.0f);
    row_received_.assign(grid_height_, false);
  }
  const uint64_t row_bytes = grid_width_ * VectorBytes(dtype_, dim_);
  std::copy(rows.data().begin(), rows.data().end(), data_.begin() + row_start * row_bytes);
  if (!scales_.empty()) {  // INT8, UINT8 (an offset into an empty vector is undefined)
    std::copy(rows.scales().begin(), rows.scales().end(),
              scales_.begin() + row_start * grid_width_);
  }
  std::fill(row_received_.begin() + row_start, row_received_.begin() + row_start + row_count, true);
  ++chunks_;
  return absl::OkStatus();
}

absl::StatusOr<v1::Tensor> DenseAssembler::Finish() {
  if (chunks_ == 0) return absl::InvalidArgumentError("the dense stream carried no chunk");
  const auto missing = std::find(row_received_.begin(), row_received_.end(), false);
  if (missing != row_received_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("dense stream ended without patch row ",
                                                   missing - row_received_.begin(), " of ",
                                                   grid_height_));
  }
  v1::Tensor tensor;
  tensor.set_dtype(dtype_);
  tensor.add_shape(grid_height_);
  tensor.add_shape(grid_width_);
  tensor.add_shape(dim_);
  tensor.set_data(std::move(data_));
  tensor.mutable_scales()->Add(scales_.begin(), scales_.end());
  *this = DenseAssembler();
  return tensor;
}

}  // namespace dinov3::client
