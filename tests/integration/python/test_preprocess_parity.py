"""Server preprocessing against transformers' DINOv3 image processor (the reference).

The server's own code path (OpenCV decode, resize plan, ATen antialiased resize, normalise) runs
through build/bin/dinov3-preprocess-dump; the reference is DINOv3ViTImageProcessor on
`PIL.Image.open(path).convert("RGB")`, i.e. what the seed code does. Tolerances on the normalised
tensor (values of order 1, in units of 1/std ~ 4.4 per unit of pixel value):
  - PNG (lossless, same pixels on both sides): max abs <= 1e-3.
  - JPEG: the decoders could differ (Pillow's bundled libjpeg-turbo vs Debian's, under OpenCV),
    but with the pinned versions they decode these images identically: measured max abs 0.0,
    asserted <= 1e-3 like PNG so that a decoder change is noticed.
Also: the official eval recipe (RESIZE_SHORTER_SIDE_CENTER_CROP) equals torchvision's
Resize(256, bicubic, antialias) + CenterCrop(224) on the same float image, and RESIZE_KEEP_ASPECT
keeps the aspect ratio on a patch grid.
"""
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2 as T
from transformers import DINOv3ViTImageProcessor

from tests.integration.python.server_process import BIN_DIR
from tests.integration.python.synthetic_images import photo_like, save

DUMP = os.path.join(BIN_DIR, "dinov3-preprocess-dump")
PNG_MAX_ABS = 1e-3
JPEG_MAX_ABS = 1e-3
SIZES = [(224, 224), (480, 640), (517, 333), (200, 1000), (53, 37), (1024, 768)]


def server_tensor(path, *flags):
    if not os.access(DUMP, os.X_OK):
        pytest.fail(f"{DUMP} is missing: build it first (scripts/build.sh)", pytrace=False)
    out = f"{path}.f32"
    run = subprocess.run([DUMP, *flags, path, out], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    height, width = map(int, run.stdout.split())
    return torch.from_numpy(np.fromfile(out, dtype="<f4").reshape(3, height, width))


@pytest.fixture(scope="module")
def processor():
    return DINOv3ViTImageProcessor()


def reference(processor, path):
    image = Image.open(path).convert("RGB")
    return processor(images=image, return_tensors="pt").pixel_values[0]


@pytest.mark.parametrize("mode", [None, "L", "RGBA"])
@pytest.mark.parametrize("height,width", SIZES)
def test_png_matches_hf_processor(processor, tmp_path, height, width, mode):
    path = save(photo_like(height, width, seed=height), str(tmp_path / "x.png"), "PNG", mode)
    got, want = server_tensor(path), reference(processor, path)
    assert got.shape == want.shape == (3, 224, 224)
    diff = (got - want).abs().max().item()
    print(f"png {height}x{width} {mode or 'RGB'}: max|d|={diff:.2e}")
    assert diff <= PNG_MAX_ABS


@pytest.mark.parametrize("height,width", SIZES)
def test_jpeg_matches_hf_processor_within_decoder_bound(processor, tmp_path, height, width):
    path = save(photo_like(height, width, seed=width), str(tmp_path / "x.jpg"), "JPEG",
                quality=90)
    diff = (server_tensor(path) - reference(processor, path)).abs()
    print(f"jpeg {height}x{width}: max|d|={diff.max().item():.2e}")
    assert diff.max().item() <= JPEG_MAX_ABS


def test_center_crop_recipe_matches_torchvision(tmp_path):
    pixels = photo_like(480, 640, seed=3)
    path = save(pixels, str(tmp_path / "x.png"), "PNG")
    got = server_tensor(path, "--mode=crop")
    x = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    x = T.CenterCrop(224)(T.Resize(256, interpolation=T.InterpolationMode.BICUBIC,
                                   antialias=True)(x))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    want = (x - mean) / std
    assert got.shape == want.shape == (3, 224, 224)
    assert (got - want).abs().max().item() <= PNG_MAX_ABS


@pytest.mark.parametrize("height,width,target,grid", [
    (480, 640, 448, (28, 37)),     # shorter side to 448, longer 597 -> 592
    (1000, 200, 0, (62, 12)),      # own size, rounded to the patch grid
    (3000, 4000, 768, (48, 64)),   # the official notebooks' ~768 px
])
def test_keep_aspect_grid(tmp_path, height, width, target, grid):
    path = save(photo_like(height, width), str(tmp_path / "x.png"), "PNG")
    got = server_tensor(path, "--mode=keep_aspect", f"--height={target}")
    assert (got.shape[1] // 16, got.shape[2] // 16) == grid
