// Plain data shared by the server's components (torch-, gRPC- and OpenCV-free).
#ifndef DINOV3_SERVER_COMMON_TYPES_H_
#define DINOV3_SERVER_COMMON_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dinov3 {

// Element type of an output tensor on the wire. The compact ones (for vector databases) encode
// each vector (the last dimension) on its own: kInt8 as round(x / scale) in [-127, 127] with
// scale = max|x| / 127 (1 for a zero vector), kUint8 as that plus 128, kBinary as sign bits
// (1 where x > 0) packed 8 per byte, least significant bit first. dinov3.v1.DType documents it
// for clients.
enum class DType { kFloat32, kFloat16, kBFloat16, kInt8, kUint8, kBinary };

// Bytes per element of a float dtype (kFloat32, kFloat16, kBFloat16).
inline int DTypeSize(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

// Wire bytes of one vector of `dim` values in `dtype`, its scale included.
inline int64_t VectorWireBytes(DType dtype, int64_t dim) {
  switch (dtype) {
    case DType::kInt8:
    case DType::kUint8:
      return dim + static_cast<int64_t>(sizeof(float));
    case DType::kBinary:
      return (dim + 7) / 8;
    case DType::kFloat32:
    case DType::kFloat16:
    case DType::kBFloat16:
      break;
  }
  return dim * DTypeSize(dtype);
}

// Which token groups a request wants back.
struct OutputSet {
  bool cls = false;
  bool pooled = false;
  bool patch_tokens = false;
  bool registers = false;
};

// A row-major little-endian tensor ready for the wire.
struct TensorData {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  // Float dtypes: product(shape) * DTypeSize(dtype) bytes. Compact dtypes: per vector (last
  // dimension) `dim` bytes (kInt8, kUint8) or ceil(dim / 8) bytes (kBinary).
  std::string data;
  std::vector<float> scales;  // kInt8, kUint8: one per vector, row-major; empty otherwise
};

// Intermediate layers a request asks for (DINOv3's get_intermediate_layers): absolute 0-based
// block indices, resolved and without repeats, in the order asked; `norm` applies the model's
// final LayerNorm to their tokens. Empty `indices`: none (the final outputs only).
struct LayerSelection {
  std::vector<int> indices;
  bool norm = true;
};

// A decoded image: 8-bit RGB, interleaved, row-major, no row padding.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // height * width * 3 bytes
};

enum class Interpolation { kBilinear, kBicubic };

// How one image becomes the model input: resize the whole image to resize_height x
// resize_width (antialiased), then take the crop at (crop_top, crop_left) of out_height x
// out_width. out_* are multiples of the patch size.
struct ResizePlan {
  int resize_height = 0;
  int resize_width = 0;
  int crop_top = 0;
  int crop_left = 0;
  int out_height = 0;
  int out_width = 0;
  Interpolation interpolation = Interpolation::kBilinear;
};

// One block's outputs for one image, encoded like the final ones (EmbeddingResult).
struct LayerResult {
  int layer = 0;                           // 0-based block index
  std::optional<TensorData> cls;           // [D]
  std::optional<TensorData> pooled;        // [D]
  std::optional<TensorData> registers;     // [R, D]
  std::optional<TensorData> patch_tokens;  // [grid_height * grid_width, D]
};

// The embeddings of one image, encoded for the wire. Absent outputs were not requested.
struct EmbeddingResult {
  std::optional<TensorData> cls;           // [D]
  std::optional<TensorData> pooled;        // [D]
  std::optional<TensorData> registers;     // [R, D]
  std::optional<TensorData> patch_tokens;  // [grid_height * grid_width, D]
  int grid_height = 0;
  int grid_width = 0;
  std::vector<LayerResult> layers;  // LayerSelection::indices, in that order
  double queue_seconds = 0;
  double inference_seconds = 0;
  int batch_size = 0;  // images in the batch this image ran in
};

// Memory held by one device's caching allocator (CUDA devices).
struct DeviceMemory {
  std::string device;  // e.g. "cuda:0"
  int64_t allocated_bytes = 0;
  int64_t reserved_bytes = 0;
};

}  // namespace dinov3

#endif  // DINOV3_SERVER_COMMON_TYPES_H_
