// Minimal writer of NumPy .npy files, format version 1.0 (little-endian, C order).
//
// The header is the magic "\x93NUMPY", version 1.0, a little-endian uint16 header length and
// the dict "{'descr': '<f4', 'fortran_order': False, 'shape': (...), }" padded with spaces and a
// final '\n' so that the data starts at a multiple of 64 bytes. float32 ('<f4'), float16
// ('<f2'), int8 ('|i1') and uint8 ('|u1') are written. Stateless; safe to call from any thread (on
// different paths). Errors: InvalidArgument (data size does not match the shape, negative
// dimension, header too long for version 1.0); I/O failures are Unknown and name the path and the
// OS error.
#ifndef DINOV3_CLIENT_CPP_NPY_WRITER_H_
#define DINOV3_CLIENT_CPP_NPY_WRITER_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace dinov3::client {

enum class NpyDType { kFloat32, kFloat16, kInt8, kUint8 };

// Bytes per element of `dtype`.
size_t NpyElementSize(NpyDType dtype);

// The complete header (magic to newline) for an array of `dtype` and `shape`; its size is a
// multiple of 64.
std::string NpyHeader(NpyDType dtype, absl::Span<const int64_t> shape);

// Writes header + `data` (raw little-endian elements, row-major) to `path`, replacing any file
// there. `data` must hold exactly prod(shape) elements.
absl::Status WriteNpy(const std::string& path, NpyDType dtype, absl::Span<const int64_t> shape,
                      absl::string_view data);

}  // namespace dinov3::client

#endif  // DINOV3_CLIENT_CPP_NPY_WRITER_H_
