"""PCA and patch-similarity pictures (dinov3_client.pictures and `dinov3-client pca` /
`dinov3-client similarity`) against a real dinov3-server with a random 1-block ViT-S/16.

Random weights give colours no meaning, so the images are ones whose structure survives them:
a left half of one flat colour and a right half of another. With those, the leading PCA
component is the half (the others follow the position through RoPE), so the checks look at
the red channel (component 0) only; the similarity of a patch is highest at itself and higher
over its own half. Measured numbers are printed (pytest -s shows them).
"""
import io
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.server_process import (BIN_DIR, export_random_model,
                                                     running_server)
from dinov3_client import pictures, pca_image, similarity_image

CLIENT = os.path.join(BIN_DIR, "dinov3-client")
WIDTH, HEIGHT, SIZE = 320, 224, 320  # 20 x 14 patches of 16 px at SIZE
RED, BLUE = (200, 40, 40), (30, 60, 220)
ROW, COL = 5, 3  # a patch of the left half
# Thresholds (0-255 channel values); measured: spread ~1, gap ~254, cross-image ~1.
MAX_SPREAD, MIN_GAP, MAX_CROSS_IMAGE = 40, 150, 40


def png(left, right, width=WIDTH, height=HEIGHT):
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, :width // 2], pixels[:, width // 2:] = left, right
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pictures")
    model = export_random_model(tmp, seed=7)
    with running_server(model, tmp / "server.log") as (target, client):
        yield target, client


@pytest.fixture
def halves_file(tmp_path):
    path = tmp_path / "halves.png"
    path.write_bytes(png(RED, BLUE))
    return path


def right_panel(picture):
    """The right half (the picture beside the input) of a side-by-side PNG, as int RGB."""
    pixels = np.asarray(picture.convert("RGB"), dtype=np.int64)
    assert pixels.shape[1] % 2 == 0, pixels.shape
    return pixels[:, pixels.shape[1] // 2:]


def interiors(panel):
    """Pixels well inside the left half and well inside the right half: [n, 3] each."""
    h, w = panel.shape[:2]
    rows = slice(h // 10, h - h // 10)
    return (panel[rows, w // 20:w * 2 // 5].reshape(-1, 3),
            panel[rows, w * 3 // 5:w - w // 20].reshape(-1, 3))


def check_halves_separated(panel, label):
    """Component 0 (red) is flat inside each half and far apart between them."""
    left, right = (part[:, 0] for part in interiors(panel))
    spread = max(np.ptp(left), np.ptp(right))
    gap = abs(left.mean() - right.mean())
    print(f"{label}: red spread inside halves {spread}, gap between halves {gap:.1f}")
    assert spread <= MAX_SPREAD and gap >= MIN_GAP, (spread, gap)
    return left.mean(), right.mean()


def patch_centre(panel, grid_shape, row, col):
    h, w = panel.shape[:2]
    return int((row + 0.5) * h / grid_shape[0]), int((col + 0.5) * w / grid_shape[1])


def check_heat_panel(panel, grid_shape, label):
    """Brightness (R+G+B, monotonic in the cosine for "hot") is maximal at the chosen patch and
    higher over its half (the left) than over the other."""
    brightness = panel.sum(axis=-1)
    y, x = patch_centre(panel, grid_shape, ROW, COL)
    left, right = (part.sum(axis=-1) for part in interiors(panel))
    print(f"{label}: brightness at patch {brightness[y, x]}, max {brightness.max()}, "
          f"left mean {left.mean():.1f}, right mean {right.mean():.1f}")
    assert brightness[y, x] == brightness.max() == 3 * 255
    assert left.mean() > right.mean() + 100


def run_client(*args, target):
    return subprocess.run([CLIENT, *map(str, args), f"--server={target}"], capture_output=True,
                          text=True, timeout=300)


# --- pure functions (no server) ---

def test_hot_colors_runs_black_red_yellow_white():
    colours = pictures.hot_colors(np.array([-1.0, 0.0, 1 / 3, 2 / 3, 1.0, 2.0]), 0.0, 1.0)
    assert colours.tolist() == [[0, 0, 0], [0, 0, 0], [255, 0, 0], [255, 255, 0],
                                [255, 255, 255], [255, 255, 255]]
    ramp = pictures.hot_colors(np.linspace(0, 1, 50), 0.0, 1.0).astype(int).sum(axis=-1)
    assert np.all(np.diff(ramp) >= 0)


def test_pca_colors_fit_jointly_and_scale_each_component_to_unit_range():
    direction = np.random.default_rng(0).normal(size=16)
    a = np.outer(np.linspace(-1, 1, 12), direction).reshape(3, 4, 16) * 10
    b = a[:, :2].copy()  # a subset of a's patches: not the whole range of component 0
    ca, cb = pictures.pca_colors([a, b])
    assert ca.shape == (3, 4, 3) and cb.shape == (3, 2, 3)
    joint = np.concatenate([ca.reshape(-1, 3), cb.reshape(-1, 3)])
    np.testing.assert_allclose(joint.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(joint.max(axis=0), 1, atol=1e-6)
    # Component 0 follows the position along `direction`, on one scale for both grids.
    first = ca[..., 0].reshape(-1)
    assert np.all(np.diff(first) > 0) or np.all(np.diff(first) < 0)
    np.testing.assert_allclose(cb[..., 0], ca[:, :2, 0], atol=1e-6)


def test_similarity_map_is_cosine():
    grid = np.array([[[1.0, 0.0], [0.0, 2.0]], [[-3.0, 0.0], [1.0, 1.0]]])
    np.testing.assert_allclose(pictures.similarity_map(grid, 0, 0),
                               [[1, 0], [-1, np.sqrt(0.5)]], atol=1e-6)
    with pytest.raises(ValueError, match="outside the 2x2 patch grid"):
        pictures.similarity_map(grid, 2, 0)


# --- Python client against the server ---

def test_pca_image_separates_the_halves(server, halves_file, tmp_path):
    _, client = server
    [picture] = pca_image(client, halves_file, size=SIZE, out=tmp_path / "out")
    written = Image.open(tmp_path / "out" / "halves_pca.png")
    assert written.size == picture.size == (2 * WIDTH, HEIGHT)
    assert np.array_equal(np.asarray(written.convert("RGB")), np.asarray(picture))
    check_halves_separated(right_panel(picture), "python pca")


def test_pca_image_fits_one_pca_over_all_images(server, tmp_path):
    """A flat red image next to the red|blue one gets the red half's colour: one joint fit
    (a PCA of the flat image alone would stretch its position components over [0, 1])."""
    _, client = server
    halves, flat = png(RED, BLUE), png(RED, RED)
    pictures_ = pca_image(client, [halves, flat], size=SIZE, out=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["image0_pca.png", "image1_pca.png"]
    red_half, _ = check_halves_separated(right_panel(pictures_[0]), "joint pca, halves")
    flat_red = np.concatenate([p[:, 0] for p in interiors(right_panel(pictures_[1]))])
    print(f"joint pca: flat image red {flat_red.min()}..{flat_red.max()}, "
          f"red half {red_half:.1f}")
    assert np.abs(flat_red - red_half).max() <= MAX_CROSS_IMAGE


def test_pca_image_default_size_is_768_on_the_longer_side(server, halves_file):
    _, client = server
    [picture] = pca_image(client, str(halves_file))
    assert picture.size == (2 * 768, round(HEIGHT * 768 / WIDTH))


def test_similarity_image_peaks_at_the_patch_and_favours_its_half(server, halves_file, tmp_path):
    _, client = server
    out = tmp_path / "sim.png"
    picture, cosine = similarity_image(client, halves_file, ROW, COL, size=SIZE, out=out)
    assert cosine.shape == (HEIGHT // 16, WIDTH // 16)
    others = np.delete(cosine.reshape(-1), ROW * cosine.shape[1] + COL)
    print(f"python similarity: self {cosine[ROW, COL]:.6f}, best other {others.max():.6f}, "
          f"left mean {cosine[:, :10].mean():.4f}, right mean {cosine[:, 10:].mean():.4f}")
    assert cosine[ROW, COL] == pytest.approx(1.0, abs=1e-5)
    assert cosine[ROW, COL] >= others.max()
    assert cosine[:, :10].mean() > cosine[:, 10:].mean() + 0.2
    assert Image.open(out).size == (2 * WIDTH, HEIGHT)
    check_heat_panel(right_panel(picture), cosine.shape, "python similarity")


def test_similarity_image_rejects_a_patch_outside_the_grid(server, halves_file):
    _, client = server
    with pytest.raises(ValueError, match=r"\(14, 0\) is outside the 14x20 patch grid"):
        similarity_image(client, halves_file, 14, 0, size=SIZE)


# --- dinov3-client (C++) against the server ---

def test_cli_pca_writes_side_by_side_pngs_like_the_python_client(server, halves_file, tmp_path):
    target, client = server
    other = tmp_path / "flat.png"
    other.write_bytes(png(RED, RED))
    done = run_client("pca", halves_file, other, f"--out={tmp_path / 'out'}", f"--size={SIZE}",
                      target=target)
    assert done.returncode == 0, done.stderr
    assert "halves_pca.png: 14x20 patches (dim 384)" in done.stdout, done.stdout
    written = [Image.open(tmp_path / "out" / f"{s}_pca.png") for s in ("halves", "flat")]
    assert all(w.size == (2 * WIDTH, HEIGHT) for w in written)
    red_half, _ = check_halves_separated(right_panel(written[0]), "cli pca")
    flat_red = np.concatenate([p[:, 0] for p in interiors(right_panel(written[1]))])
    assert np.abs(flat_red - red_half).max() <= MAX_CROSS_IMAGE
    # Same fit as the Python client's: the PCA panels agree up to rounding and the borders
    # of the nearest-neighbour blocks.
    python = pca_image(client, [halves_file, other], size=SIZE)
    for cli_picture, py_picture in zip(written, python):
        diff = np.abs(right_panel(cli_picture) - right_panel(py_picture))
        print(f"cli vs python pca panel: mean abs diff {diff.mean():.2f}, "
              f"median {np.median(diff):.0f}")
        assert np.median(diff) <= 2 and diff.mean() <= 10


def test_cli_pca_default_size(server, halves_file, tmp_path):
    target, _ = server
    done = run_client("pca", halves_file, f"--out={tmp_path}", target=target)
    assert done.returncode == 0, done.stderr
    size = Image.open(tmp_path / "halves_pca.png").size
    assert size == (2 * 768, round(HEIGHT * 768 / WIDTH)), size


def test_cli_similarity_peaks_at_the_patch_and_favours_its_half(server, halves_file, tmp_path):
    target, client = server
    out = tmp_path / "sim.png"
    done = run_client("similarity", halves_file, f"--patch={ROW},{COL}", f"--out={out}",
                      f"--size={SIZE}", target=target)
    assert done.returncode == 0, done.stderr
    assert f"14x20 patches, patch ({ROW}, {COL})" in done.stdout, done.stdout
    picture = Image.open(out)
    assert picture.size == (2 * WIDTH, HEIGHT)
    check_heat_panel(right_panel(picture), (14, 20), "cli similarity")
    # The same heat map as the Python client's (colour map and channel order included).
    python, _ = similarity_image(client, halves_file, ROW, COL, size=SIZE)
    diff = np.abs(right_panel(picture) - right_panel(python))
    print(f"cli vs python heat panel: mean abs diff {diff.mean():.2f}, max {diff.max()}")
    assert diff.max() <= 2


@pytest.mark.parametrize("patch", ["3", "a,b", "-1,2", "1,2,3", "1,", ""])
def test_cli_similarity_rejects_a_malformed_patch(server, halves_file, tmp_path, patch):
    target, _ = server
    done = run_client("similarity", halves_file, f"--patch={patch}", f"--out={tmp_path}/s.png",
                      target=target)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "--patch: expected ROW,COL" in done.stderr, done.stderr


def test_cli_similarity_rejects_a_patch_outside_the_grid(server, halves_file, tmp_path):
    target, _ = server
    done = run_client("similarity", halves_file, "--patch=3,20", f"--out={tmp_path}/s.png",
                      f"--size={SIZE}", target=target)
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "--patch=3,20 is outside the 14x20 patch grid" in done.stderr, done.stderr
    assert not (tmp_path / "s.png").exists()


def test_cli_pictures_report_missing_files_and_flags(server, tmp_path):
    target, _ = server
    missing = tmp_path / "nope.png"
    done = run_client("pca", missing, f"--out={tmp_path}", target=target)
    assert done.returncode == 1 and f"cannot open {missing}" in done.stderr, done.stderr
    done = run_client("similarity", missing, "--patch=0,0", f"--out={tmp_path}/s.png",
                      target=target)
    assert done.returncode == 1 and f"cannot open {missing}" in done.stderr, done.stderr
    for args, message in [(["pca", missing], "pca needs --out=DIR"),
                          (["pca", f"--out={tmp_path}"], "pca needs at least one image"),
                          (["similarity", missing, "--patch=0,0"], "needs --out=FILE.png"),
                          (["pca", missing, f"--out={tmp_path}", "--size=0"], "--size")]:
        done = run_client(*args, target=target)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
