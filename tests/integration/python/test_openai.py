"""The OpenAI-compatible HTTP front door (server/openai/openai_front_door.h) driven by the real
`openai` Python package against the real dinov3-server, compared with the native dinov3.v1 API:

  - POST /v1/embeddings with PNG and JPEG data URLs of two sizes returns, per image, exactly
    (bit for bit) the native Embed answer for the same encoded bytes: the CLS token,
    L2-normalised, by default; extra_body {"output": "pooled", "normalize": false} gives the
    native POOLED output without normalisation; encoding_format "float", "base64" (handed over
    undecoded by the package when asked for explicitly) and left out (the package then asks
    for base64 and decodes it itself) give the same vectors; usage.prompt_tokens is
    the sum of the native answer's grid_height * grid_width; `model` is the served name;
    bare base64 (no data: prefix) is accepted;
  - GET /v1/models lists the served model(s);
  - errors map to the package's exceptions: an unknown model -> NotFoundError, an http URL ->
    BadRequestError naming input[0], `dimensions` -> BadRequestError;
  - with auth.api_keys_file: no key or a wrong key -> AuthenticationError (401), the right key
    is served;
  - two models served: `model=` picks the one whose native answer matches.

Exactness: every server here runs with batching.max_batch_size=1, so that each image is
computed alone in both protocols. With batching, the same image can be computed in a batch of
another size in the native call than in the HTTP call (the images of a request are decoded in
parallel and reach the queue at different moments), and a CPU GEMM over a different batch size
may sum in another order: equal within 1e-5 (test_batching.py), not necessarily bit for bit
(on the 2-core CI CPU the answers were also bit-exact with the default batching, but that is
the CPU library's choice, not a contract). The front door itself adds no rounding: it copies
the float32 bytes the pipeline produced (base64), or prints them as shortest-round-trip
decimals that parse back to the same float32 (float).
"""
import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import openai
import pytest
from PIL import Image

from tests.integration.python.server_process import (export_random_model, http_port,
                                                     running_server, tail)
from dinov3_client import EmbeddingClient  # noqa: E402 (path set by server_process)

API_KEY = "openai-test-key-0123456789abcdef"
OTHER_KEY = "openai-test-key-0123456789abcdeX"
HTTP_SECONDS = 300  # hang guard of each HTTP call, not a duration


def pixels(seed, height, width):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def data_url(encoded, fmt):
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(encoded).decode()}"


# Two formats, two sizes each (not the model's 224x224, so the server resizes them).
IMAGES = [(encode(pixels(1, 64, 48), "PNG"), "PNG"),
          (encode(pixels(2, 100, 140), "PNG"), "PNG"),
          (encode(pixels(3, 64, 48), "JPEG"), "JPEG"),
          (encode(pixels(4, 100, 140), "JPEG"), "JPEG")]
URLS = [data_url(encoded, fmt) for encoded, fmt in IMAGES]
ENCODED = [encoded for encoded, _ in IMAGES]


def openai_client(port, api_key="unused-but-required-by-the-package"):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=api_key,
                         max_retries=0, timeout=HTTP_SECONDS)


def as_float32(embedding):
    """One `embedding` of the package's answer: a list of floats (encoding_format "float", or
    left out: the package asks for base64 and decodes it itself), or the base64 string of the
    little-endian float32 vector (encoding_format="base64" given explicitly: the package hands
    it over as the server sent it)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").astype(np.float32)
    # Python floats are the float32 values widened to double: narrowing back is exact.
    return np.asarray(embedding, dtype=np.float64).astype(np.float32)


def vectors(response):
    """The embeddings of an openai CreateEmbeddingResponse, as float32 rows in input order."""
    assert [d.index for d in response.data] == list(range(len(response.data)))
    assert all(d.object == "embedding" for d in response.data)
    return [as_float32(d.embedding) for d in response.data]


def assert_exact(got, want, what):
    assert got.dtype == np.float32 and want.dtype == np.float32, what
    assert got.shape == want.shape, (what, got.shape, want.shape)
    if not np.array_equal(got, want):
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64)).max()
        pytest.fail(f"{what}: not bit-exact, max |diff| = {diff:g}")
    assert got.tobytes() == want.tobytes(), what  # also -0.0 vs 0.0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("openai_model"), seed=31,
                               name="dino.pt")


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    log = tmp_path_factory.mktemp("openai_server") / "server.log"
    with running_server(model, log, "--max_batch_size=1") as (target, client):
        yield client, http_port(log), log


def test_default_is_native_normalised_cls_exactly(server):
    client, port, log = server
    native = client.embed(ENCODED, outputs=("cls",), dtype="float32", l2_normalize=True)
    oa = openai_client(port)
    for encoding_format in ["float", "base64", None]:  # None: the package's default (base64)
        kwargs = {} if encoding_format is None else {"encoding_format": encoding_format}
        response = oa.embeddings.create(model="dino", input=URLS, **kwargs)
        assert response.model == "dino"
        assert response.object == "list"
        kind = {"float": list, "base64": str, None: list}[encoding_format]
        assert all(isinstance(d.embedding, kind) for d in response.data), encoding_format
        got = vectors(response)
        assert len(got) == len(IMAGES)
        for i, (vector, result) in enumerate(zip(got, native)):
            assert_exact(vector, result.cls, f"image {i} ({IMAGES[i][1]}), {encoding_format}")
            assert abs(float(np.linalg.norm(vector.astype(np.float64))) - 1.0) < 1e-5
        tokens = sum(r.grid_height * r.grid_width for r in native)
        assert tokens > 0
        assert response.usage.prompt_tokens == tokens
        assert response.usage.total_tokens == tokens


def test_pooled_without_normalisation_is_native_pooled_exactly(server):
    client, port, _ = server
    native = client.embed(ENCODED, outputs=("pooled",), dtype="float32", l2_normalize=False)
    oa = openai_client(port)
    answers = {}
    for encoding_format in ["float", "base64"]:
        response = oa.embeddings.create(model="dino", input=URLS, encoding_format=encoding_format,
                                        extra_body={"output": "pooled", "normalize": False})
        answers[encoding_format] = vectors(response)
        for i, (vector, result) in enumerate(zip(answers[encoding_format], native)):
            assert_exact(vector, result.pooled, f"pooled image {i}, {encoding_format}")
    # Not normalised: the raw pooled vector of a random model is far from unit length.
    assert any(abs(float(np.linalg.norm(v)) - 1.0) > 1e-3 for v in answers["float"])
    # And normalize=false with the default output (CLS) is the raw native CLS.
    raw_cls = client.embed(ENCODED[:1], outputs=("cls",), dtype="float32", l2_normalize=False)
    response = oa.embeddings.create(model="dino", input=URLS[:1],
                                    extra_body={"normalize": False})
    assert_exact(vectors(response)[0], raw_cls[0].cls, "raw cls")


def test_raw_base64_wire_format_is_little_endian_float32(server):
    """What the package decodes for us, checked on the wire: the float32 bytes, base64."""
    client, port, _ = server
    native = client.embed(ENCODED[:2], outputs=("cls",), dtype="float32", l2_normalize=True)
    body = json.dumps({"model": "dino", "input": URLS[:2], "encoding_format": "base64"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/embeddings", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=HTTP_SECONDS) as answer:
        payload = json.load(answer)
    for i, item in enumerate(payload["data"]):
        assert isinstance(item["embedding"], str)
        vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        assert_exact(vector, native[i].cls, f"wire image {i}")


def test_single_string_and_bare_base64_inputs(server):
    client, port, _ = server
    native = client.embed(ENCODED, outputs=("cls",), dtype="float32", l2_normalize=True)
    oa = openai_client(port)
    bare = [base64.b64encode(e).decode() for e in ENCODED]
    got = vectors(oa.embeddings.create(model="dino", input=bare, encoding_format="float"))
    for i, vector in enumerate(got):
        assert_exact(vector, native[i].cls, f"bare base64 image {i}")
    # One input as a plain string (not a list), and the default model ("").
    one = vectors(oa.embeddings.create(model="", input=URLS[2]))
    assert len(one) == 1
    assert_exact(one[0], native[2].cls, "single string input")


def test_models_list(server):
    _, port, _ = server
    models = openai_client(port).models.list()
    assert [m.id for m in models.data] == ["dino"]
    assert all(m.object == "model" and m.owned_by == "dinov3-server" for m in models.data)


def test_errors_map_to_openai_exceptions(server):
    client, port, _ = server
    oa = openai_client(port)
    with pytest.raises(openai.NotFoundError) as missing:
        oa.embeddings.create(model="no-such-model", input=URLS[:1])
    assert missing.value.status_code == 404
    assert "no-such-model" in missing.value.message

    with pytest.raises(openai.BadRequestError) as url:
        oa.embeddings.create(model="dino", input=["http://example.com/cat.png"])
    assert url.value.status_code == 400
    assert "input[0]" in url.value.message
    assert url.value.body["param"] == "input[0]"

    with pytest.raises(openai.BadRequestError) as dims:
        oa.embeddings.create(model="dino", input=URLS[:1], dimensions=128)
    assert "dimensions" in dims.value.message

    # Bad base64 is refused while parsing, naming input[1].
    with pytest.raises(openai.BadRequestError) as bad:
        oa.embeddings.create(model="dino", input=[URLS[0], "data:image/png;base64,!!!"])
    assert "input[1]" in bad.value.message and bad.value.body["param"] == "input[1]"
    # Valid base64 of something that is not an image is refused by the decoder, which names
    # the image by its index in the native API's words ("image[1]"); param is "input".
    with pytest.raises(openai.BadRequestError) as undecodable:
        oa.embeddings.create(model="dino", input=[URLS[0], "data:image/png;base64,AAAA"])
    assert "[1]" in undecodable.value.message, undecodable.value.body
    assert undecodable.value.body["param"].startswith("input"), undecodable.value.body
    # The server still answers afterwards.
    assert client.health() == "SERVING"
    assert len(vectors(oa.embeddings.create(model="dino", input=URLS[:1]))) == 1


def test_api_keys(model, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the test's key\n{API_KEY}\n")
    log = tmp_path / "server.log"
    with running_server(model, log, f"--api_keys_file={keys}", "--max_batch_size=1") as (
            target, _):
        port = http_port(log)
        assert "API keys required" in tail(log, 10**6)
        for wrong in [OTHER_KEY, API_KEY + "x", "short"]:
            with pytest.raises(openai.AuthenticationError) as refused:
                openai_client(port, api_key=wrong).embeddings.create(model="dino",
                                                                    input=URLS[:1])
            assert refused.value.status_code == 401
            with pytest.raises(openai.AuthenticationError):
                openai_client(port, api_key=wrong).models.list()
        # No Authorization header at all (the package always sends one): plain urllib.
        body = json.dumps({"model": "dino", "input": URLS[:1]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/embeddings", data=body,
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(request, timeout=HTTP_SECONDS)
        assert missing.value.code == 401
        error = json.load(missing.value)["error"]
        assert error["type"] == "authentication_error" and error["message"], error
        # The right key: served, and the same vector as the native API (whose health is
        # exempt; Embed needs the key too).
        response = openai_client(port, api_key=API_KEY).embeddings.create(model="dino",
                                                                            input=URLS[:1])
        assert response.model == "dino"
        with EmbeddingClient(target, api_key=API_KEY, timeout=HTTP_SECONDS) as keyed:
            native = keyed.embed(ENCODED[:1], outputs=("cls",), l2_normalize=True)
        assert_exact(vectors(response)[0], native[0].cls, "keyed")


def test_two_models_model_picks_the_right_one(tmp_path):
    small = export_random_model(tmp_path, seed=41, name="small.pt")
    plus = export_random_model(tmp_path, seed=42, variant="vits16plus", name="plus.pt")
    config = tmp_path / "two.yaml"
    config.write_text("model: {default_model: 'small'}\n"
                      "batching: {max_batch_size: 1}\n"
                      "models:\n"
                      f"  - name: small\n    path: {small}\n"
                      f"  - name: plus\n    path: {plus}\n")
    log = tmp_path / "server.log"
    with running_server(None, log, f"--config={config}") as (_, client):
        oa = openai_client(http_port(log))
        assert sorted(m.id for m in oa.models.list().data) == ["plus", "small"]
        native = {name: client.embed(ENCODED, outputs=("cls",), l2_normalize=True, model=name)
                  for name in ["small", "plus"]}
        for name in ["small", "plus", ""]:
            response = oa.embeddings.create(model=name, input=URLS)
            served = name or "small"
            assert response.model == served
            other = "plus" if served == "small" else "small"
            for i, vector in enumerate(vectors(response)):
                assert_exact(vector, native[served][i].cls, f"{served} image {i}")
                assert not np.allclose(vector, native[other][i].cls, atol=1e-3)
