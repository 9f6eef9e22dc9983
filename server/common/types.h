// Plain data shared by the server's components (torch-, gRPC- and OpenCV-free).
#ifndef DINOV3_SERVER_COMMON_TYPES_H_
#define DINOV3_SERVER_COMMON_TYPES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dinov3 {

// Element type of an output tensor on the wire.
enum class DType { kFloat32, kFloat16, kBFloat16 };

// Bytes per element of `dtype`.
inline int DTypeSize(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

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
  std::string data;  // product(shape) * DTypeSize(dtype) bytes
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

// The embeddings of one image, encoded for the wire. Absent outputs were not requested.
struct EmbeddingResult {
  std::optional<TensorData> cls;           // [D]
  std::optional<TensorData> pooled;        // [D]
  std::optional<TensorData> registers;     // [R, D]
  std::optional<TensorData> patch_tokens;  // [grid_height * grid_width, D]
  int grid_height = 0;
  int grid_width = 0;
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
