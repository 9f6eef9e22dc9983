// Minimal .npy v1.0 writer; see npy_writer.h.
#include "client/cpp/npy_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dinov3::client {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kPreambleSize = kMagicSize + 2 + 2;  // magic, version, header length
constexpr size_t kAlignment = 64;

// Python's repr of a tuple of ints: "()", "(3,)", "(2, 3)".
std::string ShapeRepr(absl::Span<const int64_t> shape) {
  if (shape.size() == 1) return absl::StrCat("(", shape[0], ",)");
  return absl::StrCat("(", absl::StrJoin(shape, ", "), ")");
}

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

}  // namespace

size_t NpyElementSize(NpyDType dtype) {
  switch (dtype) {
    case NpyDType::kFloat32:
      return 4;
    case NpyDType::kFloat16:
      return 2;
    case NpyDType::kInt8:
    case NpyDType::kUint8:
      break;
  }
  return 1;
}

namespace {

const char* NpyDescr(NpyDType dtype) {
  switch (dtype) {
    case NpyDType::kFloat32:
      return "<f4";
    case NpyDType::kFloat16:
      return "<f2";
    case NpyDType::kInt8:
      return "|i1";
    case NpyDType::kUint8:
      break;
  }
  return "|u1";
}

}  // namespace

std::string NpyHeader(NpyDType dtype, absl::Span<const int64_t> shape) {
  std::string dict = absl::StrCat("{'descr': '", NpyDescr(dtype),
                                  "', 'fortran_order': False, 'shape': ", ShapeRepr(shape), ", }");
  // Pad with spaces so that preamble + dict + '\n' is a multiple of the alignment.
  const size_t unpadded = kPreambleSize + dict.size() + 1;
  dict.append((kAlignment - unpadded % kAlignment) % kAlignment, ' ');
  dict.push_back('\n');
  const size_t header_len = dict.size();
  std::string header(kMagic, kMagicSize);
  header.push_back('\x01');  // major version
  header.push_back('\x00');  // minor version
  header.push_back(static_cast<char>(header_len & 0xff));
  header.push_back(static_cast<char>((header_len >> 8) & 0xff));
  header.append(dict);
  return header;
}

absl::Status WriteNpy(const std::string& path, NpyDType dtype, absl::Span<const int64_t> shape,
                      absl::string_view data) {
  uint64_t count = 1;
  for (const int64_t dim : shape) {
    if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("negative dimension ", dim));
    count *= static_cast<uint64_t>(dim);
  }
  if (count * NpyElementSize(dtype) != data.size()) {
    return absl::InvalidArgumentError(absl::StrCat("npy data has ", data.size(), " bytes, shape ",
                                                   ShapeRepr(shape), " needs ",
                                                   count * NpyElementSize(dtype)));
  }
  const std::string header = NpyHeader(dtype, shape);
  if (header.size() - kPreambleSize > 0xffff) {
    return absl::InvalidArgumentError("npy header too long for format version 1.0");
  }
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
  if (file == nullptr) {
    return absl::UnknownError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  if (std::fwrite(header.data(), 1, header.size(), file.get()) != header.size() ||
      std::fwrite(data.data(), 1, data.size(), file.get()) != data.size() ||
      std::fclose(file.release()) != 0) {
    return absl::UnknownError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace dinov3::client
