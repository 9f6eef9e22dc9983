"""The C++ CLI's intermediate layers (--layers, --last_layers, --layer_norm) end to end: the
real server, a random vits16 with 4 blocks, the real dinov3-client binary and, as the reference,
the Python client on the same encoded file.

What the tests prove:
  - embed --format=json prints each image's "layers" ([{"layer": i, <outputs>}]) in the order
    asked with negative indices resolved, equal to the Python client's Embedding.layers;
    --nolayer_norm sends layer_norm=false; without layers there is no "layers" key and
    --nolayer_norm is not sent (the server would refuse it).
  - Compact dtypes print each layer's stored integers with "<name>_scales", as top-level ones.
  - embed --format=npy writes <file name>.layer<i>.<output>.npy files of the wire shapes.
  - dense --last_layers=2 writes <out>.layer<i>.npy grids equal to embed_dense_layers.
  - A bad list, --layers with --last_layers and a negative --last_layers exit 2.
"""
import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.server_process import (BIN_DIR, export_random_model,
                                                     running_server)
from dinov3_client.tensors import dequantize  # noqa: E402

CLIENT = os.path.join(BIN_DIR, "dinov3-client")
DEPTH = 4
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_layers")
    model = export_random_model(tmp, seed=11, depth=DEPTH)
    with running_server(model, str(tmp / "server.log")) as (target, client):
        yield target, client


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    pixels = np.random.default_rng(7).integers(0, 256, (120, 176, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def run_client(target, *args):
    return subprocess.run([CLIENT, *args, f"--server={target}"], capture_output=True, text=True,
                          timeout=120)


def run_ok(target, *args):
    done = run_client(target, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def check_layers(printed_layers, expected_layers, outputs):
    assert [entry["layer"] for entry in printed_layers] == [l.layer for l in expected_layers]
    for entry, expected in zip(printed_layers, expected_layers):
        assert set(entry) == {"layer", *outputs}
        for name in outputs:
            want = getattr(expected, name)
            got = np.array(entry[name], dtype=np.float32)
            assert got.shape == want.shape, (expected.layer, name)
            np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE,
                                       err_msg=f"layer {expected.layer} {name}")


@pytest.mark.parametrize("norm", [True, False])
def test_json_layers_equal_the_python_client(server, photo, norm):
    target, client = server
    outputs = ("cls", "patch_tokens")
    [want] = client.embed([photo.read_bytes()], outputs=outputs, layers=[-1, 0],
                          layer_norm=norm)
    assert [layer.layer for layer in want.layers] == [3, 0]
    flags = ["--layer_norm"] if norm else ["--nolayer_norm"]
    printed = json.loads(run_ok(target, "embed", str(photo), "--layers=-1,0", "--format=json",
                                "--outputs=cls,patch_tokens", *flags))
    np.testing.assert_allclose(np.array(printed["cls"], np.float32), want.cls, rtol=0,
                               atol=TOLERANCE)
    check_layers(printed["layers"], want.layers, outputs)
    if norm:  # the last block through the final norm is the final output
        np.testing.assert_array_equal(np.array(printed["layers"][0]["cls"], np.float32),
                                      np.array(printed["cls"], np.float32))
    else:
        [normed] = client.embed([photo.read_bytes()], outputs=("cls",), layers=[-1])
        assert np.abs(np.array(printed["layers"][0]["cls"]) - normed.layers[0].cls).max() > 1e-3


def test_without_layers_no_layers_key_and_no_layer_norm_sent(server, photo):
    target, _ = server
    # --layer_norm=false alone is not sent: the server refuses layer_norm without layers.
    printed = json.loads(run_ok(target, "embed", str(photo), "--outputs=cls",
                                "--layer_norm=false"))
    assert set(printed) == {"id", "grid", "cls"}


def test_json_compact_dtype_layers_carry_their_scales(server, photo):
    target, client = server
    [floats] = client.embed([photo.read_bytes()], outputs=("cls",), last_layers=2)
    printed = json.loads(run_ok(target, "embed", str(photo), "--last_layers=2", "--dtype=int8",
                                "--outputs=cls"))
    assert [entry["layer"] for entry in printed["layers"]] == [2, 3]
    for entry, reference in zip(printed["layers"], floats.layers):
        assert set(entry) == {"layer", "cls", "cls_scales"}
        q = np.array(entry["cls"], dtype=np.int8)
        scale = np.float32(entry["cls_scales"])
        np.testing.assert_allclose(scale, np.abs(reference.cls).max() / 127, rtol=1e-6)
        error = np.abs(dequantize(q, "int8", scale) - reference.cls)
        assert (error <= 0.5 * scale * (1 + 1e-4)).all(), error.max()


def test_npy_writes_a_file_per_layer_and_output(server, photo, tmp_path):
    target, client = server
    out = tmp_path / "features"
    [want] = client.embed([photo.read_bytes()], outputs=("cls", "patch_tokens"),
                          layers=[-1, 0])
    printed = run_ok(target, "embed", str(photo), "--layers=-1,0", "--format=npy",
                     "--outputs=cls,patch_tokens", f"--out={out}")
    expected = {"photo.png.cls.npy", "photo.png.patch_tokens.npy"}
    for layer in (3, 0):
        expected |= {f"photo.png.layer{layer}.cls.npy", f"photo.png.layer{layer}.patch_tokens.npy"}
    assert set(os.listdir(out)) == expected
    assert {os.path.basename(line) for line in printed.split()} == expected
    dim = want.cls.shape[0]
    tokens = want.grid_height * want.grid_width
    for layer in want.layers:
        cls = np.load(out / f"photo.png.layer{layer.layer}.cls.npy")
        patches = np.load(out / f"photo.png.layer{layer.layer}.patch_tokens.npy")
        assert cls.dtype == np.float32 and cls.shape == (dim,)
        assert patches.dtype == np.float32 and patches.shape == (tokens, dim)
        np.testing.assert_allclose(cls, layer.cls, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(patches, layer.patch_tokens, rtol=0, atol=TOLERANCE)


def test_dense_last_layers_writes_each_blocks_grid(server, photo, tmp_path):
    target, client = server
    out = tmp_path / "dense.npy"
    final, layers = client.embed_dense_layers(photo.read_bytes(), last_layers=2,
                                              preprocess={"mode": "keep_aspect"})
    assert sorted(layers) == [2, 3]
    printed = run_ok(target, "dense", str(photo), f"--out={out}", "--last_layers=2",
                     "--rows_per_chunk=3")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["photo.png", "dense.npy", "dense.layer2.npy", "dense.layer3.npy"])
    assert len(printed.splitlines()) == 3
    np.testing.assert_allclose(np.load(out), final, rtol=0, atol=TOLERANCE)
    for layer, grid in layers.items():
        written = np.load(tmp_path / f"dense.layer{layer}.npy")
        assert written.dtype == np.float32 and written.shape == final.shape
        np.testing.assert_allclose(written, grid, rtol=0, atol=TOLERANCE)
    assert not np.allclose(layers[2], layers[3])


@pytest.mark.parametrize("args,message", [
    (["embed", "--layers=1,x"], "bad layer index 'x'"),
    (["embed", "--layers=0,,1"], "bad layer index ''"),
    (["embed", "--layers=0.5"], "bad layer index '0.5'"),
    (["embed", "--layers=0", "--last_layers=1"], "not both"),
    (["dense", "--layers=-1", "--last_layers=2"], "not both"),
    (["dense", "--last_layers=-1"], "--last_layers must be >= 0"),
])
def test_usage_errors_exit_2(server, photo, tmp_path, args, message):
    target, _ = server
    command, *flags = args
    done = run_client(target, command, str(photo), f"--out={tmp_path / 'x.npy'}", *flags)
    assert done.returncode == 2, done.stderr
    assert "usage error" in done.stderr and message in done.stderr, done.stderr
    assert not (tmp_path / "x.npy").exists()
