"""Intermediate layers end to end (EmbedRequest.layers / last_layers / layer_norm): the real
server, a random vits16 with 4 blocks, the Python client.

What the tests prove:
  - Embedding.layers equal the exported module's forward_layers on the server's documented
    preprocessing (float32, 1e-5 abs), for every output, in the order asked, with negative
    indices resolved and with and without the final norm; the final outputs stay forward's.
  - last_layers n is the last n blocks; the outputs, dtype and l2_normalize apply per layer.
  - Requests for different layer sets in flight together each get their own layers.
  - EmbedDense streams the final rows and then each block's rows (DenseChunk.layer), equal to
    Embed's patch tokens of the same blocks.
  - Bad selections get INVALID_ARGUMENT naming the field and the limit.
"""
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.integration.python.server_process import export_random_model, running_server
from dinov3_client import EmbeddingError, embedding_pb2 as pb2  # noqa: E402

ALL = ("cls", "pooled", "registers", "patch_tokens")
DEPTH = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layers")
    model = export_random_model(tmp, seed=9, depth=DEPTH)
    with zipfile.ZipFile(model) as archive:
        name = next(n for n in archive.namelist() if n.endswith("extra/dinov3.json"))
        meta = json.loads(archive.read(name))
    with running_server(model, str(tmp / "server.log")) as (_, client):
        yield client, torch.jit.load(model), meta


def rgb(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def reference(module, meta, pixels, layers, norm):
    """forward_layers on the documented RESIZE_FIXED preprocessing (test_server_python.py)."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() * (1 / 255)
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(meta["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(meta["image_std"]).view(1, 3, 1, 1)
    with torch.inference_mode():
        out = module.forward_layers((x - mean) / std, layers, norm)
    per_layer = []
    for slot in range(len(layers)):
        patches = out["layer_patch_tokens"][0, slot]
        per_layer.append({"cls": out["layer_cls"][0, slot].numpy(),
                          "registers": out["layer_registers"][0, slot].numpy(),
                          "pooled": patches.mean(0).numpy(), "patch_tokens": patches.numpy()})
    return out["cls"][0].numpy(), per_layer


@pytest.mark.parametrize("norm", [True, False])
def test_layers_equal_forward_layers(server, norm):
    client, module, meta = server
    pixels = rgb(150, 200, seed=1)
    [got] = client.embed([pixels], outputs=ALL, layers=[-1, 0, 2], layer_norm=norm)
    final, want = reference(module, meta, pixels, [3, 0, 2], norm)
    np.testing.assert_allclose(got.cls, final, rtol=0, atol=1e-5)
    assert [layer.layer for layer in got.layers] == [3, 0, 2]
    for layer, expected in zip(got.layers, want):
        for name in ALL:
            value = getattr(layer, name)
            assert value.dtype == np.float32 and value.shape == expected[name].shape
            np.testing.assert_allclose(value, expected[name], rtol=0, atol=1e-5,
                                       err_msg=f"layer {layer.layer} {name}")
    if norm:  # the last block through the final norm is the final output
        np.testing.assert_array_equal(got.layers[0].cls, got.cls)


def test_last_layers_with_outputs_dtype_and_normalisation(server):
    client, _, _ = server
    pixels = rgb(96, 128, seed=2)
    [plain] = client.embed([pixels], outputs=("cls", "patch_tokens"), layers=[2, 3])
    [got] = client.embed([pixels], outputs=("cls", "patch_tokens"), last_layers=2,
                         dtype="float16", l2_normalize=True)
    assert [layer.layer for layer in got.layers] == [2, 3]
    for layer, reference_layer in zip(got.layers, plain.layers):
        assert layer.pooled is None and layer.registers is None
        assert layer.cls.dtype == np.float16
        np.testing.assert_allclose(np.linalg.norm(layer.patch_tokens.astype(np.float32), axis=1),
                                   1, atol=2e-3)
        unit = reference_layer.cls / np.linalg.norm(reference_layer.cls)
        np.testing.assert_allclose(layer.cls.astype(np.float32), unit, atol=2e-3)
    [none] = client.embed([pixels])
    assert none.layers == []


def test_different_layer_sets_in_flight_get_their_own(server):
    client, _, _ = server
    pixels = rgb(64, 64, seed=3)
    sets = [[0], [1, 2], [3], [0], [2, 1]]
    alone = {tuple(s): client.embed([pixels], outputs=("cls",), layers=s)[0] for s in sets}
    with ThreadPoolExecutor(len(sets)) as pool:
        together = list(pool.map(
            lambda s: client.embed([pixels], outputs=("cls",), layers=s)[0], sets))
    for asked, result in zip(sets, together):
        assert [layer.layer for layer in result.layers] == asked
        for layer, single in zip(result.layers, alone[tuple(asked)].layers):
            np.testing.assert_allclose(layer.cls, single.cls, rtol=0, atol=1e-5)


def test_dense_streams_each_layer_after_the_final_rows(server):
    client, _, _ = server
    pixels = rgb(200, 320, seed=4)
    preprocess = {"mode": "keep_aspect"}
    final, layers = client.embed_dense_layers(pixels, layers=[1, -1], preprocess=preprocess,
                                              rows_per_chunk=3)
    [embedded] = client.embed([pixels], outputs=("patch_tokens",), layers=[1, 3],
                              preprocess=preprocess)
    grid = (embedded.grid_height, embedded.grid_width, -1)
    np.testing.assert_array_equal(final, embedded.patch_tokens.reshape(grid))
    assert sorted(layers) == [1, 3]
    for layer in embedded.layers:
        np.testing.assert_array_equal(layers[layer.layer], layer.patch_tokens.reshape(grid))
    chunks = list(client.stub.EmbedDense(pb2.EmbedDenseRequest(
        image=pb2.Image(raw=pb2.RawImage(width=320, height=200, format=pb2.RGB8,
                                         data=pixels.tobytes())),
        preprocess=pb2.Preprocess(mode=pb2.RESIZE_KEEP_ASPECT), rows_per_chunk=3,
        layers=[1, 3])))
    order = [chunk.layer if chunk.HasField("layer") else None for chunk in chunks]
    first_layer = order.index(1)
    assert all(o is None for o in order[:first_layer]) and order[-1] == 3
    assert order == sorted(order, key=lambda o: -1 if o is None else o)


@pytest.mark.parametrize("kwargs,message", [
    ({"layers": [4]}, "layers[0]: block 4 is outside the model's 4 blocks"),
    ({"layers": [-5]}, "layers[0]: block -5 is outside"),
    ({"layers": [1, -3]}, "layers[1]: block 1 repeats layers[0]"),
    ({"layers": [0, 1, 2, 3, 0]}, "layers: 5 indices, above the model's depth of 4"),
    ({"last_layers": 5}, "last_layers: 5 is above the model's depth of 4"),
    ({"layers": [0], "last_layers": 1}, "not both"),
    ({"layer_norm": False}, "layer_norm: set without layers"),
])
def test_bad_selections_name_the_field(server, kwargs, message):
    client, _, _ = server
    with pytest.raises(EmbeddingError) as error:
        client.embed([rgb(32, 32)], **kwargs)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details
    client.embed([rgb(32, 32)], layers=[0])  # still serving
