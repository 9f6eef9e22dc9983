// What the two Open Inference Protocol (KServe v2) transports of the load generator share, with
// no gRPC and no JSON: the input tensor of a request (IMAGE, BYTES [N], each element one encoded
// file; or PIXELS, UINT8 [N,H,W,3], for the generated raw image), the names and datatypes of the
// requested outputs, and the check of an answered output tensor.
//
// Tensor data is flattened row-major, little-endian; a BYTES element is a 4-byte little-endian
// length followed by that many bytes (the protocol's raw encoding). Pure functions.
#ifndef DINOV3_CLIENT_BENCH_OIP_TENSORS_H_
#define DINOV3_CLIENT_BENCH_OIP_TENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "client/bench/request_set.h"
#include "dinov3/v1/embedding.pb.h"

namespace dinov3::bench {

struct OipInput {
  std::string name;      // "IMAGE" or "PIXELS"
  std::string datatype;  // "BYTES" or "UINT8"
  std::vector<int64_t> shape;
  std::string raw;  // the elements, raw-encoded
};

// Appends one BYTES element, framed, to `raw`.
void AppendBytesElement(absl::string_view element, std::string& raw);

// The input of a request carrying `copies` copies of `image`: IMAGE for an encoded file,
// PIXELS for RGB8 pixels. InvalidArgument for another raw pixel format or copies < 1.
absl::StatusOr<OipInput> MakeOipInput(const v1::Image& image, int copies);

// One requested output: its tensor name and the datatype it is asked in.
struct OipOutput {
  std::string name;      // "CLS", "POOLED", "PATCH_TOKENS", "REGISTERS"
  std::string datatype;  // "FP32", "FP16", "BF16"
};

// spec.outputs (none = CLS and POOLED, the server's default), each in spec.dtype.
std::vector<OipOutput> OipOutputs(const RequestSpec& spec);

// Bytes per element of an output datatype (FP32 4, FP16 / BF16 2, UINT8 1); 0 if unknown.
size_t OipElementSize(absl::string_view datatype);

// Whether an answered output tensor is the one asked for a request of `images` images: its
// datatype, a shape [images, ...] of positive dimensions, and exactly shape-product * element
// size bytes of data.
bool OipOutputMatches(const OipOutput& asked, int images, absl::string_view datatype,
                      absl::Span<const int64_t> shape, size_t data_bytes);

}  // namespace dinov3::bench

#endif  // DINOV3_CLIENT_BENCH_OIP_TENSORS_H_
