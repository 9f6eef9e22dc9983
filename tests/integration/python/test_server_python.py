"""The real server binary on loopback, driven by the Python client (dinov3_client).

A module fixture exports a random vits16 model (depth 2, seed 0), starts
`build/bin/dinov3-server --model=... --listen=127.0.0.1:PORT --device=cpu` and waits (<= 60 s) for
health SERVING. A missing binary FAILS every test (it is never skipped). What the tests prove:
  - Embed of raw RGB8 pixels and of a PNG of the same pixels equals the TorchScript module run on
    the documented preprocessing (x/255, bilinear antialiased resize to 224x224, (x-mean)/std):
    cls, pooled (mean patch token), registers, patch_tokens within 1e-5 abs (float32).
  - float16 / bfloat16 outputs decode and match float32 within 1e-2 abs + 2^-8 relative
    (bfloat16 keeps 8 significant bits; values reach about 5).
  - l2_normalize gives unit-norm cls, pooled and patch tokens (1e-5), same directions.
  - Many images per request come back in order with their ids (each equal to its own Embed).
  - StreamEmbed answers every request once, with its request_id and that request's embeddings;
    a bad request in the stream gets its own INVALID_ARGUMENT error and the stream goes on.
  - EmbedDense (RESIZE_KEEP_ASPECT, 320x200, several chunks) reassembles bit-exactly to the
    patch_tokens of Embed with the same preprocessing, on an aspect-kept grid.
  - GetModelInfo, health (both service names) and reflection describe the served model.
  - Bad input gets INVALID_ARGUMENT with a message naming the problem (and the image index);
    the server keeps serving afterwards.
"""
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from io import BytesIO
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase)
from PIL import Image

from tests.integration.python.server_process import (  # noqa: E402
    CALL_SECONDS, ROOT, running_server)
from dinov3_client import EmbeddingError, assemble_dense  # noqa: E402
from dinov3_client import embedding_pb2 as pb2  # noqa: E402

ALL = ("cls", "pooled", "registers", "patch_tokens")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    model = str(tmp / "model.pt")
    export = subprocess.run([sys.executable, "-m", "model.export", "--random", "--variant",
                             "vits16", "--depth", "2", "--seed", "0", "--output", model],
                            cwd=ROOT, capture_output=True, text=True)
    if export.returncode != 0:
        pytest.fail(f"model export failed:\n{export.stderr}", pytrace=False)
    with running_server(model, str(tmp / "server.log")) as (target, client):
        with zipfile.ZipFile(model) as archive:
            name = next(n for n in archive.namelist() if n.endswith("extra/dinov3.json"))
            meta = json.loads(archive.read(name))
        yield SimpleNamespace(client=client, stub=client.stub, target=target, meta=meta,
                              module=torch.jit.load(model))


def rgb(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(pixels, fmt="PNG", **kwargs):
    buf = BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def reference(server, pixels, size=(224, 224)):
    """The TorchScript module's outputs on the server's documented RESIZE_FIXED preprocessing."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() * (1 / 255)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(server.meta["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(server.meta["image_std"]).view(1, 3, 1, 1)
    with torch.inference_mode():
        out = server.module((x - mean) / std)
    patches = out["patch_tokens"][0]
    return {"cls": out["cls"][0].numpy(), "pooled": patches.mean(0).numpy(),
            "registers": out["registers"][0].numpy(), "patch_tokens": patches.numpy()}


def test_embed_raw_and_png_match_torchscript(server):
    pixels = rgb(150, 200, seed=1)
    raw, png = server.client.embed([pixels, encode(pixels)], outputs=ALL, ids=["raw", "png"])
    want = reference(server, pixels)
    for result in (raw, png):
        assert (result.grid_height, result.grid_width) == (14, 14)
        assert result.patch_tokens.shape == (196, 384) and result.registers.shape == (4, 384)
        for name in ALL:
            got = getattr(result, name)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want[name], rtol=0, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("dtype,np_dtype", [("float16", np.float16), ("bfloat16", np.float32)])
def test_half_precision_outputs(server, dtype, np_dtype):
    image = encode(rgb(120, 160, seed=2))
    [full] = server.client.embed([image], outputs=ALL)
    [half] = server.client.embed([image], outputs=ALL, dtype=dtype)
    for name in ALL:
        got = getattr(half, name)
        assert got.dtype == np_dtype and got.shape == getattr(full, name).shape
        np.testing.assert_allclose(got.astype(np.float32), getattr(full, name), rtol=2**-8,
                                   atol=1e-2, err_msg=name)


def test_l2_normalize(server):
    image = encode(rgb(100, 100, seed=3))
    [plain] = server.client.embed([image], outputs=ALL)
    [unit] = server.client.embed([image], outputs=ALL, l2_normalize=True)
    for name in ("cls", "pooled", "patch_tokens"):
        vectors = np.atleast_2d(getattr(unit, name))
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5, err_msg=name)
        raw = np.atleast_2d(getattr(plain, name))
        np.testing.assert_allclose(vectors, raw / np.linalg.norm(raw, axis=-1, keepdims=True),
                                   atol=1e-5, err_msg=name)


def test_many_images_in_order_with_ids(server):
    images = [encode(rgb(64 + 16 * i, 96, seed=10 + i)) for i in range(5)]
    ids = [f"img-{i}" for i in range(5)]
    results = server.client.embed(images, ids=ids)
    assert [r.id for r in results] == ids
    for image, result in zip(images, results):
        [alone] = server.client.embed([image])
        np.testing.assert_allclose(result.cls, alone.cls, atol=1e-5)
        np.testing.assert_allclose(result.pooled, alone.pooled, atol=1e-5)


def test_stream_embed_answers_each_request(server):
    images = {f"req-{i}": encode(rgb(80, 80 + 8 * i, seed=20 + i)) for i in range(6)}
    images["req-bad"] = b"GIF89a" + bytes(100)
    requests = [server.client.build_request([image], request_id=rid)
                for rid, image in images.items()]
    answers = list(server.client.stream_embed(requests, timeout=CALL_SECONDS))
    assert sorted(a.request_id for a in answers) == sorted(images)
    for answer in answers:
        if answer.request_id == "req-bad":
            assert answer.error is not None and not answer.results
            assert answer.error.code == grpc.StatusCode.INVALID_ARGUMENT
            assert "GIF" in answer.error.details
            continue
        assert answer.error is None, answer.error
        [want] = server.client.embed([images[answer.request_id]])
        [got] = answer.results
        np.testing.assert_allclose(got.cls, want.cls, atol=1e-5, err_msg=answer.request_id)


def test_embed_dense_reassembles_patch_tokens(server):
    pixels = rgb(200, 320, seed=4)  # 320 wide, 200 high
    keep = pb2.Preprocess(mode=pb2.RESIZE_KEEP_ASPECT)
    request = pb2.EmbedDenseRequest(image=pb2.Image(encoded=encode(pixels)), preprocess=keep,
                                    rows_per_chunk=3)
    chunks = list(server.stub.EmbedDense(request, timeout=CALL_SECONDS))
    assert len(chunks) > 1
    dense = assemble_dense(chunks)
    [result] = server.client.embed([pixels], outputs=("patch_tokens",), preprocess=keep)
    gh, gw = result.grid_height, result.grid_width
    assert dense.shape == (gh, gw, 384) and abs(gw / gh - 320 / 200) < 0.1
    np.testing.assert_array_equal(dense, result.patch_tokens.reshape(gh, gw, 384))
    np.testing.assert_array_equal(server.client.embed_dense(pixels, preprocess=keep), dense)


def test_model_info(server):
    info = server.client.model_info()
    assert (info.variant, info.embed_dim, info.patch_size, info.num_registers) == (
        "vits16", 384, 16, 4)
    assert info.depth == 2 and info.num_heads == 6 and info.untrained
    assert (info.default_height, info.default_width) == (224, 224)
    np.testing.assert_allclose(info.image_mean, server.meta["image_mean"], atol=1e-6)
    assert set(info.dtypes) == {pb2.FLOAT32, pb2.FLOAT16, pb2.BFLOAT16, pb2.INT8, pb2.UINT8,
                                pb2.BINARY}
    assert info.HasField("limits")
    assert info.limits.max_images_per_request > 0 and info.limits.max_pixels > 0
    assert info.limits.max_image_bytes > 0 and info.limits.max_patches > 0


def test_health_and_reflection(server):
    assert server.client.health("") == "SERVING"
    assert server.client.health("dinov3.v1.EmbeddingService") == "SERVING"
    database = ProtoReflectionDescriptorDatabase(server.client.channel)
    assert "dinov3.v1.EmbeddingService" in database.get_services()
    service = descriptor_pool.DescriptorPool(database).FindServiceByName(
        "dinov3.v1.EmbeddingService")
    assert {m.name for m in service.methods} == {"Embed", "StreamEmbed", "EmbedDense",
                                                 "GetModelInfo", "ListModels"}
    # Without admin keys the ModelAdmin service is not served.
    assert "dinov3.v1.ModelAdmin" not in database.get_services()


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(side=100000):
    """A valid PNG header declaring side x side RGB pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(bytes(1000))) + png_chunk(b"IEND", b""))


def good():
    return pb2.Image(encoded=encode(rgb(32, 48, seed=5)))


def request(*images, **fields):
    return pb2.EmbedRequest(images=list(images), **fields)


def too_many(server):
    limit = server.client.model_info().limits.max_images_per_request
    small = good()
    return request(*[small] * max(300, limit + 1))


JPEG = encode(rgb(64, 64, seed=6), "JPEG", quality=90)
BAD = {  # name: (request builder, substrings the message must contain, case-insensitive)
    "empty request": (lambda s: request(), ["image"]),
    "zero-byte image": (lambda s: request(pb2.Image(encoded=b"")), ["image[0]"]),
    "image without source": (lambda s: request(pb2.Image(id="x")), ["image[0]"]),
    "truncated jpeg header": (lambda s: request(pb2.Image(encoded=JPEG[:64])), ["image[0]"]),
    "truncated jpeg data": (lambda s: request(pb2.Image(encoded=JPEG[:len(JPEG) // 2])),
                            ["image[0]"]),
    "random bytes": (lambda s: request(good(), pb2.Image(
        encoded=b"\x13" + np.random.default_rng(7).bytes(999))), ["image[1]"]),
    "png bomb": (lambda s: request(pb2.Image(encoded=png_bomb())), ["image[0]", "pixels"]),
    "gif": (lambda s: request(pb2.Image(encoded=b"GIF89a" + bytes(100))), ["image[0]", "GIF"]),
    "tiff": (lambda s: request(pb2.Image(encoded=b"II*\x00" + bytes(100))), ["image[0]", "TIFF"]),
    "raw wrong length": (lambda s: request(pb2.Image(raw=pb2.RawImage(
        width=10, height=10, format=pb2.RGB8, data=bytes(299)))), ["image[0]", "bytes"]),
    "raw unspecified format": (lambda s: request(pb2.Image(raw=pb2.RawImage(
        width=10, height=10, data=bytes(300)))), ["image[0]", "format"]),
    "unknown output": (lambda s: request(good(), outputs=[99]), ["output"]),
    "unspecified output": (lambda s: request(good(), outputs=[pb2.OUTPUT_UNSPECIFIED]),
                           ["output"]),
    "unknown dtype": (lambda s: request(good(), dtype=99), ["type"]),
    "too many images": (too_many, ["images"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_invalid_argument(server, name):
    build, words = BAD[name]
    with pytest.raises(grpc.RpcError) as info:
        server.stub.Embed(build(server), timeout=CALL_SECONDS)
    error = info.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, error.code(), error.details())
    for word in words:
        assert word.lower() in error.details().lower(), (name, word, error.details())
    [result] = server.client.embed([good().encoded])  # still serving
    assert result.cls.shape == (384,)
