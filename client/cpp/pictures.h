// The pictures people look at with DINOv3 dense features: `dinov3-client pca` and
// `dinov3-client similarity` (flags live in client_main.cc).
//
// Both commands read encoded image files, decode them with OpenCV (EXIF orientation applied,
// as the server does), ask EmbedDense for the patch grid with RESIZE_KEEP_ASPECT at `size`
// pixels on the longer side, and write PNG files (the input on the left, the picture on the
// right, both with the input's aspect ratio and `size` pixels on the longer side).
//
// PCA: 3 components fitted jointly over the patches of all given images (so colours match
// across them), component i -> RGB channel i, each scaled by its min and max over the fitted
// patches to [0, 1]. The sign of each component is fixed so that its largest-magnitude loading
// is positive. Similarity: cosine of one patch to every patch, colour map "hot" (black, red,
// yellow, white as the value goes from the image's minimum cosine to 1), nearest-upsampled.
//
// Errors are absl::Status (as in commands.h): gRPC failures keep their code, unreadable or
// undecodable files are NotFound / InvalidArgument naming the file, a patch outside the grid
// is InvalidArgument. Nothing here exits the process. Not meant for concurrent use.
#ifndef DINOV3_CLIENT_CPP_PICTURES_H_
#define DINOV3_CLIENT_CPP_PICTURES_H_

#include <opencv2/core.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/cpp/commands.h"

namespace dinov3::client {

// Dense patch features of one image: float32, row-major [height, width, dim].
struct PatchGrid {
  int height = 0;
  int width = 0;
  int dim = 0;
  std::vector<float> values;
};

struct PatchIndex {
  int row = 0;
  int col = 0;
};

struct PcaOptions {
  std::vector<std::string> images;  // encoded image files
  std::string out_dir;              // gets <input stem>_pca.png per image (created if missing)
  int size = 768;                   // longer side in pixels (> 0)
};

struct SimilarityOptions {
  std::string image;     // an encoded image file
  PatchIndex patch;      // the patch compared with all others (row, column of the grid)
  std::string out_path;  // the PNG written
  int size = 768;        // longer side in pixels (> 0)
};

// "ROW,COL" with non-negative integers -> PatchIndex; InvalidArgument otherwise.
absl::StatusOr<PatchIndex> ParsePatchIndex(absl::string_view text);

// RESIZE_KEEP_ASPECT's Preprocess.height (the shorter side) that puts about `longer` pixels on
// the longer side of a `height` x `width` image; at least 1.
int ShorterSideFor(int height, int width, int longer);

// PCA colours of `grids` fitted jointly: one CV_32FC3 [height, width] picture per grid, BGR
// channel order (component 0 is red), values in [0, 1]. All grids must share `dim`.
std::vector<cv::Mat> PcaColors(const std::vector<PatchGrid>& grids);

// Cosine similarity of patch `patch` to every patch: CV_32F [height, width]. The patch must be
// inside the grid.
cv::Mat CosineMap(const PatchGrid& grid, PatchIndex patch);

// The "hot" colour map of a CV_32F map: (v - lo) / (hi - lo) clamped to [0, 1] as black (0),
// red (1/3), yellow (2/3), white (1), linear in between. CV_8UC3, BGR.
cv::Mat HotColors(const cv::Mat& values, float lo, float hi);

// `image` (CV_8UC3) and `picture` (any size, CV_8UC3) resized with nearest neighbours to the
// image's size, side by side.
cv::Mat SideBySide(const cv::Mat& image, const cv::Mat& picture);

// pca: writes out_dir/<stem>_pca.png per image and prints the paths and grid sizes.
absl::Status RunPca(const ConnectionOptions& connection, const PcaOptions& options,
                    std::ostream& out);

// similarity: writes out_path (input with the patch outlined | heat map) and prints the grid,
// the patch and the mean cosine.
absl::Status RunSimilarity(const ConnectionOptions& connection, const SimilarityOptions& options,
                           std::ostream& out);

}  // namespace dinov3::client

#endif  // DINOV3_CLIENT_CPP_PICTURES_H_
