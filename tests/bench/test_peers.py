"""The benchmark's peer servers (tests/bench/peers) answer what dinov3-server answers.

Fast correctness checks, not timings. A random vits16 with one block (seed 0) is served by the
real dinov3-server and by each peer from the same file; the same images must give the same
embeddings (float32: cosine >= 0.9999 and max |diff| <= 1e-4):
  - python_grpc_server.py: a raw 224x224 RGB8 image, a 300x200 PNG that is resized, every
    output in bfloat16 with l2_normalize, float16 dtype/shape, request_id and image ids echoed,
    INVALID_ARGUMENT for raw data of the wrong length; SIGTERM ends it with status 0.
  - litserve_server.py (only where litserve is installed: tests/bench/peers/requirements.txt;
    the bench smoke run installs it): raw image at the default size and at resize [160, 224],
    sent concurrently so they can share a batch; HTTP 400 for a bad request; after SIGTERM no
    process of its session is left.
  - mlserver_server.py (only where .venv-mlserver exists: tests/bench/peers/setup_mlserver.sh),
    driven by tritonclient over the Open Inference Protocol: gRPC with a PNG that is resized and
    raw PIXELS in one request (CLS and POOLED), REST JSON with base64 IMAGE asking POOLED alone,
    four concurrent gRPC requests that its adaptive batching may merge; a bad image fails with
    INVALID_ARGUMENT and the peer still serves; SIGTERM ends it with status 0 and no process of
    its session left.

    .venv/bin/python -m pytest tests/bench/test_peers.py -q
"""
import base64
import concurrent.futures
import io
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.server_process import (ROOT, EmbeddingClient, EmbeddingError,
                                                     export_random_model, running_server, tail)

PEERS = os.path.join(ROOT, "tests", "bench", "peers")
STARTUP_SECONDS = 60


def random_image(height, width, seed):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_bytes(pixels):
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def assert_same(got, want, name):
    got, want = np.asarray(got, np.float64).ravel(), np.asarray(want, np.float64).ravel()
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    cosine = got @ want / (np.linalg.norm(got) * np.linalg.norm(want))
    assert cosine >= 0.9999, f"{name}: cosine {cosine}"
    assert np.abs(got - want).max() <= 1e-4, f"{name}: max |diff| {np.abs(got - want).max()}"


def start_peer(script, log_path, *args, python=sys.executable):
    """Starts a peer in its own session; returns (process, port) once it prints READY (a peer
    that announces several ports, `READY <port> <port>...`: (process, [ports]))."""
    log = open(log_path, "w")
    proc = subprocess.Popen([python, os.path.join(PEERS, script), *args],
                            stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True, cwd=ROOT)
    log.close()
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                ports = [int(p) for p in line.split()[1:]]
                return proc, ports[0] if len(ports) == 1 else ports
            if not line and proc.poll() is not None:
                break
    stop_peer(proc)
    pytest.fail(f"{script} did not print READY (status {proc.returncode}):\n{tail(log_path)}",
                pytrace=False)


def session_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_peer(proc, grace=20):
    """SIGTERM, then SIGKILL to the whole session; returns (exit status, session left alive)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 5
    while session_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    leftover = session_alive(proc.pid)
    if leftover:
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, leftover


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=0, depth=1)


@pytest.fixture(scope="module")
def reference(model, tmp_path_factory):
    """A client of the real dinov3-server serving `model`."""
    log = str(tmp_path_factory.mktemp("server") / "server.log")
    with running_server(model, log) as (_, client):
        yield client


@pytest.fixture(scope="module")
def python_peer(model, tmp_path_factory):
    log = str(tmp_path_factory.mktemp("python_peer") / "peer.log")
    proc, port = start_peer("python_grpc_server.py", log, "--model", model, "--port", "0")
    client = EmbeddingClient(f"127.0.0.1:{port}", timeout=30.0)
    yield client
    client.close()
    status, leftover = stop_peer(proc)
    assert status == 0 and not leftover, f"python peer exit {status}:\n{tail(log)}"


def test_python_peer_raw_image_matches_server(reference, python_peer):
    image = random_image(224, 224, seed=1)
    [want] = reference.embed([image])
    [got] = python_peer.embed([image])
    assert_same(got.cls, want.cls, "cls")
    assert_same(got.pooled, want.pooled, "pooled")
    assert (got.grid_height, got.grid_width) == (want.grid_height, want.grid_width) == (14, 14)


def test_python_peer_resized_png_matches_server(reference, python_peer):
    png = png_bytes(random_image(200, 300, seed=2))
    [want] = reference.embed([png])
    [got] = python_peer.embed([png])
    assert_same(got.cls, want.cls, "cls")
    assert_same(got.pooled, want.pooled, "pooled")


def test_python_peer_raw_formats_match_server(reference, python_peer):
    rgb = random_image(48, 64, seed=7)
    bgr = python_peer.build_request([rgb[:, :, ::-1]]).images[0]
    bgr.raw.format = 2  # BGR8
    images = [rgb[:, :, 0], np.dstack([rgb, rgb[:, :, :1]]), bgr]  # GRAY8, RGBA8, BGR8
    want = reference.embed(images)
    got = python_peer.embed(images)
    for g, w in zip(got, want):
        assert_same(g.cls, w.cls, "cls")
    assert_same(got[2].cls, python_peer.embed([rgb])[0].cls, "BGR8 vs RGB8")


def test_python_peer_all_outputs_bfloat16_l2(reference, python_peer):
    images = [random_image(224, 224, seed=3), png_bytes(random_image(64, 96, seed=4))]
    options = dict(outputs=("cls", "pooled", "patch_tokens", "registers"), dtype="bfloat16",
                   l2_normalize=True, preprocess={"height": 160, "width": 192}, ids=["a", "b"])
    want = reference.embed(images, **options)
    got = python_peer.embed(images, **options)
    for g, w in zip(got, want):
        assert g.id == w.id and (g.grid_height, g.grid_width) == (10, 12)
        for name in options["outputs"]:
            a, b = getattr(g, name), getattr(w, name)
            assert a.shape == b.shape, name
            np.testing.assert_allclose(a, b, atol=2e-2, rtol=2 ** -7, err_msg=name)


def test_python_peer_float16_and_request_id(reference, python_peer):
    request = python_peer.build_request([random_image(224, 224, seed=5)], dtype="float16",
                                        request_id="r-42")
    response = python_peer.stub.Embed(request, timeout=30)
    assert response.request_id == "r-42"
    [emb] = response.embeddings
    assert emb.cls.dtype == 1 and list(emb.cls.shape) == [384] and len(emb.cls.data) == 768
    [f32] = python_peer.embed([random_image(224, 224, seed=5)])
    [f16] = python_peer.embed([random_image(224, 224, seed=5)], dtype="float16")
    assert f16.pooled.dtype == np.float16 and f16.pooled.shape == (384,)
    np.testing.assert_allclose(f16.pooled, f32.pooled, atol=1e-2, rtol=1e-3)


def test_python_peer_rejects_raw_data_of_wrong_length(python_peer):
    image = python_peer.build_request([random_image(224, 224, seed=6)]).images[0]
    image.raw.data = image.raw.data[:-1]
    with pytest.raises(EmbeddingError) as error:
        python_peer.embed([image])
    assert error.value.code.name == "INVALID_ARGUMENT"
    assert "images[0]" in error.value.details
    assert python_peer.embed([random_image(224, 224, seed=6)])  # still serving


def post(port, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def decode_http_tensor(t):
    assert t["dtype"] == "float32"
    return np.frombuffer(base64.b64decode(t["data"]), "<f4").reshape(t["shape"])


def raw_body(pixels, **extra):
    return {"image": base64.b64encode(pixels.tobytes()).decode(), "encoding": "raw",
            "width": pixels.shape[1], "height": pixels.shape[0], **extra}


def test_litserve_peer_matches_server(model, reference, tmp_path):
    pytest.importorskip("litserve")  # tests/bench/peers/requirements.txt
    log = str(tmp_path / "litserve.log")
    proc, port = start_peer("litserve_server.py", log, "--model", model, "--port", "0")
    try:
        image = random_image(224, 224, seed=1)
        bodies = [raw_body(image), raw_body(image, resize=[160, 224], outputs=["cls", "pooled"])]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # may share one batch
            answers = list(pool.map(lambda b: post(port, b), bodies))
        for answer, preprocess in zip(answers, [None, {"height": 160, "width": 224}]):
            [want] = reference.embed([image], preprocess=preprocess)
            assert sorted(answer) == ["cls", "pooled"]
            assert_same(decode_http_tensor(answer["cls"]), want.cls, "cls")
            assert_same(decode_http_tensor(answer["pooled"]), want.pooled, "pooled")
        with pytest.raises(urllib.error.HTTPError) as error:
            post(port, raw_body(image[:100]) | {"height": 224})
        assert error.value.code == 400
    finally:
        status, leftover = stop_peer(proc)
    assert not leftover, f"litserve left processes behind after SIGTERM:\n{tail(log)}"


MLSERVER_PYTHON = os.path.join(ROOT, ".venv-mlserver", "bin", "python")


def test_mlserver_peer_matches_server(model, reference, tmp_path):
    if not os.access(MLSERVER_PYTHON, os.X_OK):
        pytest.skip("no .venv-mlserver: tests/bench/peers/setup_mlserver.sh")
    triton_grpc = pytest.importorskip("tritonclient.grpc")
    triton_http = pytest.importorskip("tritonclient.http")
    from tritonclient.utils import InferenceServerException

    log = str(tmp_path / "mlserver.log")
    name = "dino-peer"
    proc, (http, grpc_port) = start_peer("mlserver_server.py", log, "--model", model,
                                         "--name", name, "--threads", "1",
                                         "--max_batch_size", "4", "--max_batch_time", "0.05",
                                         python=MLSERVER_PYTHON)
    status, leftover = None, False
    try:
        pixels = random_image(224, 224, seed=1)
        png = png_bytes(random_image(200, 300, seed=2))
        want = reference.embed([png, pixels])
        grpc_client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")

        def infer_grpc(tensor, outputs=("CLS", "POOLED")):
            return grpc_client.infer(name, [tensor], client_timeout=60, outputs=[
                triton_grpc.InferRequestedOutput(o) for o in outputs])

        image = triton_grpc.InferInput("IMAGE", [1], "BYTES")
        image.set_data_from_numpy(np.array([png], dtype=np.object_))
        raw = triton_grpc.InferInput("PIXELS", [1, 224, 224, 3], "UINT8")
        raw.set_data_from_numpy(pixels[None])
        for tensor, w in [(image, want[0]), (raw, want[1])]:
            answer = infer_grpc(tensor)
            assert answer.as_numpy("CLS").shape == (1, 384)
            assert_same(answer.as_numpy("CLS")[0], w.cls, "cls")
            assert_same(answer.as_numpy("POOLED")[0], w.pooled, "pooled")

        rest = triton_http.InferenceServerClient(f"127.0.0.1:{http}", network_timeout=60)
        json_image = triton_http.InferInput("IMAGE", [1], "BYTES")
        json_image.set_data_from_numpy(np.array([base64.b64encode(png).decode()], np.object_),
                                       binary_data=False)
        answer = rest.infer(name, [json_image], outputs=[
            triton_http.InferRequestedOutput("POOLED", binary_data=False)])
        assert [o["name"] for o in answer.get_response()["outputs"]] == ["POOLED"]
        assert_same(answer.as_numpy("POOLED")[0], want[0].pooled, "pooled (REST)")

        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # may share one batch
            answers = list(pool.map(lambda _: infer_grpc(image, ("CLS",)), range(4)))
        for a in answers:
            assert_same(a.as_numpy("CLS")[0], want[0].cls, "cls (concurrent)")

        bad = triton_grpc.InferInput("IMAGE", [1], "BYTES")
        bad.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_))
        with pytest.raises(InferenceServerException) as error:
            infer_grpc(bad)
        assert "INVALID_ARGUMENT" in str(error.value.status()), error.value
        assert "cannot decode image" in error.value.message()
        assert_same(infer_grpc(image).as_numpy("CLS")[0], want[0].cls, "cls after an error")
        grpc_client.close()
        rest.close()
    finally:
        status, leftover = stop_peer(proc)
    assert status == 0 and not leftover, f"mlserver peer exit {status}:\n{tail(log)}"
