"""The compact output dtypes (INT8, UINT8, BINARY) end to end: the real server, the Python client
and the C++ CLI.

The server encodes its own float32 outputs (dinov3.v1.DType): INT8 is round(x / scale) with
scale = max|x| / 127 per vector, UINT8 that plus 128, BINARY the sign bits packed least
significant bit first. So against the float32 answer to the same request: the int8 values
dequantise to within half a step, the scale is exact, uint8 = int8 + 128, and the bits are the
signs. Every output (cls, pooled, registers, patch_tokens) and the dense stream (whose chunks
carry their rows' scales) are covered; ModelInfo offers the dtypes; the CLI prints the stored
integers and writes int8/uint8 .npy files with their scales.
"""
import json
import os
import subprocess

import numpy as np
import pytest

from tests.integration.python.server_process import (BIN_DIR, CALL_SECONDS, export_random_model,
                                                     running_server)
from dinov3_client import assemble_dense, embedding_pb2 as pb2  # noqa: E402
from dinov3_client.tensors import dequantize  # noqa: E402

ALL = ("cls", "pooled", "registers", "patch_tokens")
CLIENT = os.path.join(BIN_DIR, "dinov3-client")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compact")
    model = export_random_model(tmp, seed=5, depth=2)
    with running_server(model, str(tmp / "server.log")) as (target, client):
        yield target, client


def image(seed=0, height=96, width=128):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def embed(client, dtype, l2_normalize=False):
    images = [image(0), image(1, 64, 64)]
    return client.embed(images, outputs=ALL, dtype=dtype, l2_normalize=l2_normalize)


def check_int8(q, scales, reference):
    """q, scales as decoded; reference the float32 output."""
    assert q.dtype == np.int8 and q.shape == reference.shape
    expected_scales = np.abs(reference).max(axis=-1) / 127
    np.testing.assert_allclose(scales, expected_scales, rtol=1e-6)
    assert (np.abs(q).max(axis=-1) == 127).all()  # the largest value of each vector is +-127
    error = np.abs(dequantize(q, "int8", scales) - reference)
    assert (error <= 0.5 * scales[..., None] * (1 + 1e-4)).all(), error.max()


@pytest.mark.parametrize("l2_normalize", [False, True])
def test_int8_and_uint8_dequantise_to_the_float32_answer(server, l2_normalize):
    _, client = server
    floats = embed(client, "float32", l2_normalize)
    int8 = embed(client, "int8", l2_normalize)
    uint8 = embed(client, "uint8", l2_normalize)
    for f, q, u in zip(floats, int8, uint8):
        for name in ALL:
            reference = getattr(f, name)
            check_int8(getattr(q, name), q.scales[name], reference)
            stored = getattr(u, name)
            assert stored.dtype == np.uint8
            np.testing.assert_array_equal(stored.astype(int), getattr(q, name).astype(int) + 128)
            np.testing.assert_array_equal(u.scales[name], q.scales[name])
    print(f"int8 cls: max |x - q*scale| = "
          f"{np.abs(dequantize(int8[0].cls, 'int8', int8[0].scales['cls']) - floats[0].cls).max()}")


def test_binary_is_the_packed_signs_of_the_float32_answer(server):
    _, client = server
    floats = embed(client, "float32")
    packed = embed(client, "binary")
    for f, b in zip(floats, packed):
        assert not b.scales
        for name in ALL:
            reference = getattr(f, name)
            stored = getattr(b, name)
            dim = reference.shape[-1]
            assert stored.dtype == np.uint8
            assert stored.shape == (*reference.shape[:-1], (dim + 7) // 8)
            bits = dequantize(stored, "binary", dim=dim)
            np.testing.assert_array_equal(bits, (reference > 0).astype(np.float32))


def test_dense_chunks_carry_their_rows_scales(server):
    _, client = server
    pixels = image(2, 200, 320)
    request = pb2.EmbedDenseRequest(
        image=pb2.Image(raw=pb2.RawImage(width=320, height=200, format=pb2.RGB8,
                                         data=pixels.tobytes())),
        dtype=pb2.INT8, rows_per_chunk=3,
        preprocess=pb2.Preprocess(mode=pb2.RESIZE_KEEP_ASPECT))
    chunks = list(client.stub.EmbedDense(request, timeout=CALL_SECONDS))
    assert len(chunks) > 1
    q, scales = assemble_dense(chunks, with_scales=True)
    request.dtype = pb2.FLOAT32
    reference = assemble_dense(client.stub.EmbedDense(request, timeout=CALL_SECONDS))
    assert q.shape == reference.shape and scales.shape == reference.shape[:2]
    check_int8(q, scales, reference)


def test_model_info_offers_the_compact_dtypes(server):
    _, client = server
    offered = set(client.model_info().dtypes)
    assert {pb2.INT8, pb2.UINT8, pb2.BINARY} <= offered


def test_an_unknown_dtype_names_the_choices(server):
    _, client = server
    request = pb2.EmbedRequest(images=[pb2.Image(encoded=b"x")], dtype=9)
    with pytest.raises(Exception) as error:
        client.stub.Embed(request, timeout=CALL_SECONDS)
    assert "BINARY (5)" in str(error.value)


def run_client(target, *args):
    done = subprocess.run([CLIENT, *args, f"--server={target}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cli_prints_and_writes_the_stored_integers(server, tmp_path):
    target, client = server
    photo = tmp_path / "photo.png"
    from PIL import Image
    Image.fromarray(image(3)).save(photo)
    [floats] = client.embed([photo.read_bytes()], outputs=("cls",))
    printed = json.loads(run_client(target, "embed", str(photo), "--dtype=int8",
                                    "--outputs=cls", "--format=json"))
    q = np.array(printed["cls"], dtype=np.int8)
    check_int8(q, np.float32(printed["cls_scales"]), floats.cls)
    run_client(target, "embed", str(photo), "--dtype=uint8", "--outputs=cls", "--format=npy",
               f"--out={tmp_path}")
    stored = np.load(tmp_path / "photo.png.cls.npy")
    scales = np.load(tmp_path / "photo.png.cls.scales.npy")
    assert stored.dtype == np.uint8 and scales.shape == ()
    check_int8((stored.astype(int) - 128).astype(np.int8), scales, floats.cls)
    printed = json.loads(run_client(target, "embed", str(photo), "--dtype=binary",
                                    "--outputs=cls", "--format=json"))
    bits = dequantize(np.array(printed["cls"], np.uint8), "binary", dim=floats.cls.shape[0])
    np.testing.assert_array_equal(bits, (floats.cls > 0).astype(np.float32))
    assert "cls_scales" not in printed
