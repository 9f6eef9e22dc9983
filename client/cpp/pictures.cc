// The pca and similarity commands of dinov3-client; see pictures.h.
#include "client/cpp/pictures.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cpp/commands.h"
#include "client/cpp/dense_assembler.h"
#include "client/cpp/tensor_decode.h"
#include "dinov3/v1/embedding.grpc.pb.h"
#include "server/common/status_macros.h"

namespace dinov3::client {
namespace {

constexpr int kPcaComponents = 3;
constexpr int kMaxPowerIterations = 500;
constexpr double kPowerTolerance = 1e-5;  // radians; colours move far less than 1/255

// An input image: its file bytes and its decoded pixels (BGR8, EXIF orientation applied).
struct InputImage {
  std::string path;
  std::string encoded;
  cv::Mat pixels;
};

absl::StatusOr<InputImage> ReadImage(const std::string& path) {
  InputImage image;
  image.path = path;
  ASSIGN_OR_RETURN(image.encoded, ReadFile(path));
  try {
    const cv::Mat bytes(1, static_cast<int>(image.encoded.size()), CV_8UC1, image.encoded.data());
    image.pixels = cv::imdecode(bytes, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot decode: ", e.what()));
  }
  if (image.pixels.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an image OpenCV can decode"));
  }
  return image;
}

// The request of FetchGrid: float32 features, keep aspect, `size` pixels on the longer side.
v1::EmbedDenseRequest DenseRequest(const ConnectionOptions& connection, const InputImage& image,
                                   int size) {
  v1::EmbedDenseRequest request;
  request.mutable_image()->set_encoded(image.encoded);
  request.mutable_image()->set_id(std::filesystem::path(image.path).filename().string());
  request.mutable_preprocess()->set_mode(v1::RESIZE_KEEP_ASPECT);
  request.mutable_preprocess()->set_height(
      ShorterSideFor(image.pixels.rows, image.pixels.cols, size));
  request.set_request_id("dinov3-client");
  request.set_model(connection.model);
  return request;
}

// A reassembled [grid_h, grid_w, dim] tensor as a float32 PatchGrid.
absl::StatusOr<PatchGrid> ToPatchGrid(const absl::StatusOr<v1::Tensor>& tensor) {
  if (!tensor.ok()) {
    return absl::InternalError(absl::StrCat("bad reply: ", tensor.status().message()));
  }
  absl::StatusOr<std::vector<float>> values = DecodeTensor(*tensor);
  if (!values.ok()) {
    return absl::InternalError(absl::StrCat("bad reply: ", values.status().message()));
  }
  return PatchGrid{static_cast<int>(tensor->shape(0)), static_cast<int>(tensor->shape(1)),
                   static_cast<int>(tensor->shape(2)), *std::move(values)};
}

// EmbedDense of `image`: the chunks reassembled (as the dense command does) into a PatchGrid.
absl::StatusOr<PatchGrid> FetchGrid(const ConnectionOptions& connection, const InputImage& image,
                                    int size) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(connection));
  auto stub = v1::EmbeddingService::NewStub(channel);
  grpc::ClientContext context;
  SetUpContext(connection, context);
  std::unique_ptr<grpc::ClientReader<v1::DenseChunk>> reader =
      stub->EmbedDense(&context, DenseRequest(connection, image, size));
  DenseAssembler assembler;
  absl::Status chunk_status;
  v1::DenseChunk chunk;
  while (reader->Read(&chunk)) {
    if (chunk_status.ok()) chunk_status = assembler.Add(chunk);
    if (!chunk_status.ok()) context.TryCancel();
  }
  const grpc::Status rpc_status = reader->Finish();
  if (!chunk_status.ok()) {
    return absl::InternalError(absl::StrCat("bad reply: ", chunk_status.message()));
  }
  if (!rpc_status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(rpc_status.error_code()),
                        absl::StrCat(image.path, ": ", rpc_status.error_message()));
  }
  return ToPatchGrid(assembler.Finish());
}

// `image` resized so that its longer side is `size` pixels.
cv::Mat DisplayImage(const cv::Mat& image, int size) {
  const double scale = static_cast<double>(size) / std::max(image.rows, image.cols);
  const int rows = std::max(1, static_cast<int>(std::lround(image.rows * scale)));
  const int cols = std::max(1, static_cast<int>(std::lround(image.cols * scale)));
  cv::Mat out;
  cv::resize(image, out, cv::Size(cols, rows), 0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

// All patches of all grids, centred: [patches, dim] CV_32F.
cv::Mat CentredPatches(const std::vector<PatchGrid>& grids) {
  cv::Mat rows;
  for (const PatchGrid& grid : grids) {
    const cv::Mat one(grid.height * grid.width, grid.dim, CV_32F,
                      const_cast<float*>(grid.values.data()));
    rows.push_back(one);
  }
  cv::Mat mean;
  cv::reduce(rows, mean, 0, cv::REDUCE_AVG, CV_32F);
  return rows - cv::repeat(mean, rows.rows, 1);
}

// Modified Gram-Schmidt on the columns of `basis`, in order.
void Orthonormalize(cv::Mat& basis) {
  for (int k = 0; k < basis.cols; ++k) {
    cv::Mat column = basis.col(k);
    for (int j = 0; j < k; ++j) {
      cv::scaleAdd(basis.col(j), -basis.col(j).dot(column), column, column);
    }
    column.convertTo(column, -1, 1.0 / std::max(cv::norm(column), 1e-30));
  }
}

// Top principal directions of the centred rows `x`, one per column ([dim, components]), by
// simultaneous (orthogonal) iteration on x^T x; signs fixed as in pictures.h.
cv::Mat PrincipalDirections(const cv::Mat& x, int components) {
  cv::Mat basis(x.cols, components, CV_32F);
  cv::RNG rng(20250807);
  rng.fill(basis, cv::RNG::NORMAL, 0, 1);
  Orthonormalize(basis);
  for (int iteration = 0; iteration < kMaxPowerIterations; ++iteration) {
    cv::Mat next = x.t() * (x * basis);
    Orthonormalize(next);
    double change = 0;  // the largest move of a direction (sign ignored), ~ its angle
    for (int k = 0; k < components; ++k) {
      const double sign = next.col(k).dot(basis.col(k)) < 0 ? -1.0 : 1.0;
      change = std::max(change, cv::norm(next.col(k) - sign * basis.col(k)));
    }
    basis = next;
    if (change < kPowerTolerance) break;
  }
  for (int k = 0; k < components; ++k) {
    double min_value, max_value;
    cv::minMaxLoc(basis.col(k), &min_value, &max_value);
    cv::Mat column = basis.col(k);
    if (-min_value > max_value) column.convertTo(column, -1, -1.0);
  }
  return basis;
}

cv::Mat ToBgr8(const cv::Mat& unit_bgr) {
  cv::Mat out;
  unit_bgr.convertTo(out, CV_8UC3, 255.0);
  return out;
}

// The patch `patch` outlined on `display` (a picture of the whole grid).
void OutlinePatch(cv::Mat& display, const PatchGrid& grid, PatchIndex patch) {
  const double sy = static_cast<double>(display.rows) / grid.height;
  const double sx = static_cast<double>(display.cols) / grid.width;
  const cv::Point top_left(static_cast<int>(patch.col * sx), static_cast<int>(patch.row * sy));
  const cv::Point bottom_right(static_cast<int>((patch.col + 1) * sx) - 1,
                               static_cast<int>((patch.row + 1) * sy) - 1);
  const int thickness = std::max(1, std::max(display.rows, display.cols) / 384);
  cv::rectangle(display, top_left, bottom_right, cv::Scalar(0, 255, 0), thickness);
}

absl::Status WritePng(const std::string& path, const cv::Mat& picture) {
  try {
    if (cv::imwrite(path, picture)) return absl::OkStatus();
  } catch (const cv::Exception& e) {
    return absl::UnknownError(absl::StrCat("cannot write ", path, ": ", e.what()));
  }
  return absl::UnknownError(absl::StrCat("cannot write ", path));
}

absl::Status CheckSize(int size) {
  if (size > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("size must be > 0, got ", size));
}

}  // namespace

absl::StatusOr<PatchIndex> ParsePatchIndex(absl::string_view text) {
  const std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  PatchIndex patch;
  int* fields[] = {&patch.row, &patch.col};
  bool ok = parts.size() == 2;
  for (size_t i = 0; ok && i < 2; ++i) {
    const char* end = parts[i].data() + parts[i].size();
    const auto result = std::from_chars(parts[i].data(), end, *fields[i]);
    ok = !parts[i].empty() && result.ec == std::errc() && result.ptr == end && *fields[i] >= 0;
  }
  if (ok) return patch;
  return absl::InvalidArgumentError(
      absl::StrCat("--patch: expected ROW,COL (two non-negative integers), got \"", text, "\""));
}

int ShorterSideFor(int height, int width, int longer) {
  const double scale = static_cast<double>(longer) / std::max(height, width);
  return std::max(1, static_cast<int>(std::lround(std::min(height, width) * scale)));
}

std::vector<cv::Mat> PcaColors(const std::vector<PatchGrid>& grids) {
  const cv::Mat centred = CentredPatches(grids);
  cv::Mat projected = centred * PrincipalDirections(centred, kPcaComponents);
  for (int k = 0; k < kPcaComponents; ++k) {
    cv::Mat column = projected.col(k);
    double lo, hi;
    cv::minMaxLoc(column, &lo, &hi);
    const double scale = 1.0 / std::max(hi - lo, 1e-12);
    column.convertTo(column, -1, scale, -lo * scale);  // in place: same size and type
  }
  std::vector<cv::Mat> pictures;
  int offset = 0;
  for (const PatchGrid& grid : grids) {
    const int count = grid.height * grid.width;
    cv::Mat rgb = projected.rowRange(offset, offset + count).clone().reshape(3, grid.height);
    offset += count;
    cv::Mat bgr;
    cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
    pictures.push_back(bgr);
  }
  return pictures;
}

cv::Mat CosineMap(const PatchGrid& grid, PatchIndex patch) {
  const cv::Mat patches(grid.height * grid.width, grid.dim, CV_32F,
                        const_cast<float*>(grid.values.data()));
  const cv::Mat chosen = patches.row(patch.row * grid.width + patch.col);
  cv::Mat map(grid.height, grid.width, CV_32F);
  const double chosen_norm = std::max(cv::norm(chosen), 1e-12);
  for (int i = 0; i < patches.rows; ++i) {
    const double norm = std::max(cv::norm(patches.row(i)), 1e-12);
    map.at<float>(i / grid.width, i % grid.width) =
        static_cast<float>(patches.row(i).dot(chosen) / (norm * chosen_norm));
  }
  return map;
}

cv::Mat HotColors(const cv::Mat& values, float lo, float hi) {
  cv::Mat out(values.size(), CV_8UC3);
  const float span = std::max(hi - lo, 1e-12f);
  for (int y = 0; y < values.rows; ++y) {
    for (int x = 0; x < values.cols; ++x) {
      const float t = std::clamp((values.at<float>(y, x) - lo) / span, 0.0f, 1.0f);
      auto ramp = [t](float start) {
        return cv::saturate_cast<uchar>(255.0f * std::clamp(3.0f * (t - start), 0.0f, 1.0f));
      };
      out.at<cv::Vec3b>(y, x) = cv::Vec3b(ramp(2.0f / 3), ramp(1.0f / 3), ramp(0.0f));
    }
  }
  return out;
}

cv::Mat SideBySide(const cv::Mat& image, const cv::Mat& picture) {
  cv::Mat resized, out;
  cv::resize(picture, resized, image.size(), 0, 0, cv::INTER_NEAREST);
  cv::hconcat(image, resized, out);
  return out;
}

absl::Status RunPca(const ConnectionOptions& connection, const PcaOptions& options,
                    std::ostream& out) {
  RETURN_IF_ERROR(CheckSize(options.size));
  std::vector<InputImage> images;
  std::vector<PatchGrid> grids;
  std::set<std::string> stems;
  for (const std::string& path : options.images) {
    const std::string stem = std::filesystem::path(path).stem().string();
    if (!stems.insert(stem).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two inputs named ", stem, ".*: their outputs would collide"));
    }
    ASSIGN_OR_RETURN(images.emplace_back(), ReadImage(path));
    ASSIGN_OR_RETURN(grids.emplace_back(), FetchGrid(connection, images.back(), options.size));
  }
  std::error_code error;
  std::filesystem::create_directories(options.out_dir, error);
  if (error) return absl::UnknownError(absl::StrCat("cannot create ", options.out_dir));
  const std::vector<cv::Mat> colours = PcaColors(grids);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string path =
        (std::filesystem::path(options.out_dir) /
         absl::StrCat(std::filesystem::path(images[i].path).stem().string(), "_pca.png"))
            .string();
    const cv::Mat display = DisplayImage(images[i].pixels, options.size);
    RETURN_IF_ERROR(WritePng(path, SideBySide(display, ToBgr8(colours[i]))));
    out << absl::StrFormat("%s: %dx%d patches (dim %d)\n", path, grids[i].height, grids[i].width,
                           grids[i].dim);
  }
  return absl::OkStatus();
}

absl::Status RunSimilarity(const ConnectionOptions& connection, const SimilarityOptions& options,
                           std::ostream& out) {
  RETURN_IF_ERROR(CheckSize(options.size));
  ASSIGN_OR_RETURN(const InputImage image, ReadImage(options.image));
  ASSIGN_OR_RETURN(const PatchGrid grid, FetchGrid(connection, image, options.size));
  const PatchIndex patch = options.patch;
  if (patch.row >= grid.height || patch.col >= grid.width) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--patch=%d,%d is outside the %dx%d patch grid (rows 0..%d, columns "
        "0..%d)",
        patch.row, patch.col, grid.height, grid.width, grid.height - 1, grid.width - 1));
  }
  const cv::Mat map = CosineMap(grid, patch);
  double lo, hi;
  cv::minMaxLoc(map, &lo, &hi);
  cv::Mat display = DisplayImage(image.pixels, options.size);
  OutlinePatch(display, grid, patch);
  RETURN_IF_ERROR(WritePng(options.out_path, SideBySide(display, HotColors(map, lo, 1.0f))));
  out << absl::StrFormat("%s: %dx%d patches, patch (%d, %d), cosine min %.4f mean %.4f\n",
                         options.out_path, grid.height, grid.width, patch.row, patch.col, lo,
                         cv::mean(map)[0]);
  return absl::OkStatus();
}

}  // namespace dinov3::client
