"""Pictures of DINOv3 dense features: PCA colours and patch-similarity heat maps, as PNGs.

    from dinov3_client import EmbeddingClient, pca_image, similarity_image
    with EmbeddingClient("localhost:50051") as client:
        pca_image(client, ["cat.jpg", "dog.jpg"], out="pictures/")   # pictures/cat_pca.png, ...
        similarity_image(client, "cat.jpg", row=10, col=20, out="cat_sim.png")

Features come from EmbedDense with RESIZE_KEEP_ASPECT and `size` pixels (default 768) on the
longer side of the image (the server's max_patches limit may shrink it). Every picture has the
input's aspect ratio and `size` pixels on its longer side; the patch grid is upsampled to it
with nearest neighbours (one flat block per patch).

PCA (pca_colors): the patches of all given images are centred together and projected on the
3 leading principal directions of that joint set (one fit for all images, as in the official
DINOv3 PCA notebook, so that a colour means the same in each); component i becomes RGB channel
i, scaled by its minimum and maximum over the fitted patches to [0, 1]. The sign of each
direction is fixed so that its largest-magnitude loading is positive (deterministic colours).

Similarity (similarity_map): cosine of one patch (row, col) to every patch of the image; shown
with the "hot" colour map (hot_colors): black, red, yellow, white as the cosine goes from the
image's lowest value to 1 (the chosen patch itself), linear in between.

The same pictures come from `dinov3-client pca` and `dinov3-client similarity` (C++).
Needs numpy and Pillow.
"""
from __future__ import annotations

import io
import os
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageOps

ImageSource = Union[bytes, bytearray, memoryview, str, os.PathLike]
DEFAULT_SIZE = 768
_HOT_STOPS = (0.0, 1 / 3, 2 / 3)  # where the red, green, blue ramps of "hot" start


def load_image(image: ImageSource) -> tuple[bytes, Image.Image]:
    """The encoded bytes of a path or of bytes, and the decoded RGB picture (EXIF orientation
    applied, as the server does)."""
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            data = f.read()
    elif isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    else:
        raise TypeError(f"expected a path or encoded bytes, got {type(image).__name__}")
    with Image.open(io.BytesIO(data)) as decoded:
        return data, ImageOps.exif_transpose(decoded).convert("RGB")


def shorter_side_for(width: int, height: int, longer: int) -> int:
    """RESIZE_KEEP_ASPECT's Preprocess.height (the shorter side) that puts about `longer`
    pixels on the longer side of a width x height image; at least 1."""
    return max(1, round(min(width, height) * longer / max(width, height)))


def dense_features(client, image: ImageSource, size: int = DEFAULT_SIZE,
                   model: Optional[str] = None) -> tuple[np.ndarray, Image.Image]:
    """([grid_h, grid_w, D] float32 features, the decoded RGB input) of one image, embedded
    with its aspect kept and `size` pixels on the longer side."""
    if size <= 0:
        raise ValueError(f"size must be > 0, got {size}")
    data, picture = load_image(image)
    preprocess = {"mode": "keep_aspect", "height": shorter_side_for(*picture.size, size)}
    features = client.embed_dense(data, preprocess=preprocess, model=model)
    return features.astype(np.float32), picture


def _principal_directions(centred: np.ndarray, components: int) -> np.ndarray:
    """[D, components]: the leading eigenvectors of centred^T centred, signs fixed."""
    covariance = centred.T.astype(np.float64) @ centred.astype(np.float64)
    _, vectors = np.linalg.eigh(covariance)  # ascending eigenvalues
    directions = vectors[:, ::-1][:, :components]
    largest = directions[np.abs(directions).argmax(axis=0), np.arange(components)]
    return directions * np.where(largest < 0, -1.0, 1.0)


def pca_colors(grids: Sequence[np.ndarray], components: int = 3) -> list[np.ndarray]:
    """PCA colours of [h, w, D] feature grids fitted jointly: one [h, w, 3] float array in
    [0, 1] per grid (component i -> channel i; see the module docstring)."""
    flat = [np.asarray(g, np.float32).reshape(-1, g.shape[-1]) for g in grids]
    patches = np.concatenate(flat)
    centred = patches - patches.mean(axis=0)
    projected = centred @ _principal_directions(centred, components)
    low, high = projected.min(axis=0), projected.max(axis=0)
    projected = (projected - low) / np.maximum(high - low, 1e-12)
    out, start = [], 0
    for grid, rows in zip(grids, flat):
        out.append(projected[start:start + len(rows)].reshape(*grid.shape[:2], components))
        start += len(rows)
    return out


def similarity_map(grid: np.ndarray, row: int, col: int) -> np.ndarray:
    """[h, w] cosine similarity of patch (row, col) of a [h, w, D] grid to every patch."""
    height, width = grid.shape[:2]
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"patch ({row}, {col}) is outside the {height}x{width} patch grid")
    features = np.asarray(grid, np.float64)
    norms = np.maximum(np.linalg.norm(features, axis=-1), 1e-12)
    unit = features / norms[..., None]
    return (unit @ unit[row, col]).astype(np.float32)


def hot_colors(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """The "hot" colour map of `values`: (v - low) / (high - low) clamped to [0, 1] as black
    (0), red (1/3), yellow (2/3), white (1). uint8 [..., 3] RGB."""
    t = np.clip((np.asarray(values, np.float64) - low) / max(high - low, 1e-12), 0.0, 1.0)
    channels = [np.clip(3.0 * (t - start), 0.0, 1.0) for start in _HOT_STOPS]
    return np.round(np.stack(channels, axis=-1) * 255).astype(np.uint8)


def _display(picture: Image.Image, size: int) -> Image.Image:
    """`picture` with `size` pixels on its longer side."""
    scale = size / max(picture.size)
    width, height = (max(1, round(side * scale)) for side in picture.size)
    return picture.resize((width, height), Image.BILINEAR)


def side_by_side(image: Image.Image, grid_rgb: np.ndarray) -> Image.Image:
    """`image` and a uint8 [h, w, 3] grid picture upsampled (nearest) to its size, side by
    side."""
    right = Image.fromarray(grid_rgb, "RGB").resize(image.size, Image.NEAREST)
    out = Image.new("RGB", (image.width * 2, image.height))
    out.paste(image, (0, 0))
    out.paste(right, (image.width, 0))
    return out


def _stem(image: ImageSource, index: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.path.splitext(os.path.basename(os.fspath(image)))[0]
    return f"image{index}"


def pca_image(client, images: Union[ImageSource, Sequence[ImageSource]],
              size: int = DEFAULT_SIZE, out: Optional[Union[str, os.PathLike]] = None,
              model: Optional[str] = None) -> list[Image.Image]:
    """PCA pictures of one image or several (one PCA fitted over all of them): per image, the
    input and its PCA colours side by side (RGB, `size` pixels high or wide each).

    `out`: a directory (created if missing) that gets <stem>_pca.png per image (the file name
    without extension for paths, "image<i>" for bytes). Returns the pictures in input order.
    """
    if isinstance(images, (str, os.PathLike, bytes, bytearray, memoryview)):
        images = [images]
    stems = [_stem(image, i) for i, image in enumerate(images)]
    if len(set(stems)) != len(stems):
        raise ValueError(f"two inputs share a name, their outputs would collide: {stems}")
    fetched = [dense_features(client, image, size, model) for image in images]
    colours = pca_colors([grid for grid, _ in fetched])
    pictures = [side_by_side(_display(picture, size), np.round(c * 255).astype(np.uint8))
                for (_, picture), c in zip(fetched, colours)]
    if out is not None:
        os.makedirs(out, exist_ok=True)
        for stem, picture in zip(stems, pictures):
            picture.save(os.path.join(out, f"{stem}_pca.png"))
    return pictures


def similarity_image(client, image: ImageSource, row: int, col: int,
                     size: int = DEFAULT_SIZE, out: Optional[Union[str, os.PathLike]] = None,
                     model: Optional[str] = None) -> tuple[Image.Image, np.ndarray]:
    """(picture, [h, w] cosine map) of patch (row, col): the input with the patch outlined
    (green) and the heat map of its cosine to every patch, side by side. `out`: a PNG path.
    A patch outside the grid raises ValueError."""
    grid, picture = dense_features(client, image, size, model)
    cosine = similarity_map(grid, row, col)
    display = _display(picture, size)
    _outline_patch(display, grid.shape[:2], row, col)
    result = side_by_side(display, hot_colors(cosine, float(cosine.min()), 1.0))
    if out is not None:
        result.save(out)
    return result, cosine


def _outline_patch(display: Image.Image, grid_shape, row: int, col: int) -> None:
    sy, sx = display.height / grid_shape[0], display.width / grid_shape[1]
    box = (int(col * sx), int(row * sy), int((col + 1) * sx) - 1, int((row + 1) * sy) - 1)
    ImageDraw.Draw(display).rectangle(box, outline=(0, 255, 0),
                                      width=max(1, max(display.size) // 384))
