"""dinov3-bench against the real server: each method and load mode runs without errors, its
call counts agree exactly with the server's own counters, request errors are counted by status
code, and bad flags or an unreachable target give the documented exit status. The same for the
other front doors: --protocol=oip-grpc (ModelInfer), oip-rest (RestModelInfer, the binary tensor
extension) and openai (OpenAIEmbeddings), each with raw pixels and / or files and an unknown
model counted under NOT_FOUND.

Short runs on the depth-1 test model; nothing here checks speed.
"""
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration", "python"))
from server_process import (BIN_DIR, export_random_model, free_port, http_port,  # noqa: E402
                            running_server)

BENCH = os.path.join(BIN_DIR, "dinov3-bench")
# Short windows; --max_seconds bounds a point only as a hang guard, so that a slow or busy machine
# still completes calls in the measured windows. Runs whose every call fails never become stable
# and pass ERRORS_ONLY (a point of errors alone ends after 3 s).
QUICK = ["--warmup_seconds=0.2", "--window_seconds=0.3", "--min_window_calls=1",
         "--stable_windows=2", "--stability=0.5", "--max_seconds=20", "--progress=false"]
ERRORS_ONLY = "--max_seconds=3"


@pytest.fixture(scope="module")
def doors(tmp_path_factory):
    """(gRPC target, metrics port, HTTP front doors' target) of one server of model "model"."""
    directory = tmp_path_factory.mktemp("bench")
    model = export_random_model(directory, seed=4)
    metrics_port = free_port()
    log = str(directory / "server.log")
    with running_server(model, log, "--max_batch_size=4",
                        f"--metrics_listen=127.0.0.1:{metrics_port}") as (target, _):
        yield target, metrics_port, f"127.0.0.1:{http_port(log)}"


@pytest.fixture(scope="module")
def server(doors):
    target, metrics_port, _ = doors
    return target, metrics_port


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """A PNG and a JPEG of different sizes."""
    from PIL import Image
    import numpy as np
    directory = tmp_path_factory.mktemp("images")
    paths = []
    for i, (size, fmt) in enumerate([((40, 30), "png"), ((64, 48), "jpeg")]):
        path = directory / f"{i}.{fmt}"
        pixels = np.random.default_rng(i).integers(0, 256, (size[1], size[0], 3), np.uint8)
        Image.fromarray(pixels).save(path, format=fmt.upper())
        paths.append(str(path))
    return ",".join(paths)


def bench(target, *flags):
    out = subprocess.run([BENCH, f"--target={target}", *QUICK, *flags, "--json=-"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


SAMPLE = re.compile(r'^(\w+)\{(.*)\}\s+(\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def served(metrics_port, method, code="OK", **labels):
    """dinov3_requests_total of `method` and `code`, summed over every other label (the model,
    "(unknown)" for none served, and any label added later) unless `labels` pins it."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    want = {"code": code, "method": method, **labels}
    total = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match is None or match.group(1) != "dinov3_requests_total":
            continue
        have = dict(LABEL.findall(match.group(2)))
        if all(have.get(name) == value for name, value in want.items()):
            total += float(match.group(3))
    return total


def assert_counted(result, calls_served):
    """Every point ran without errors, and every call the bench made (warm-up included) was
    answered once by the server."""
    calls = 0
    for point in result["points"]:
        assert point["errors"] == {}, point["errors"]
        assert point["requests"] > 0 and point["images_per_second"] > 0
        assert point["response_bytes"] > 0
        calls += point["calls"]
    assert calls_served == calls


@pytest.mark.parametrize("method,server_method,flags", [
    ("embed", "Embed", ["--concurrency=1,3"]),
    ("embed", "Embed", ["--rate=20", "--max_outstanding=4"]),
    ("stream", "StreamEmbed", ["--concurrency=2", "--images_per_request=2"]),
    ("dense", "EmbedDense", ["--concurrency=2", "--image_size=64x48", "--resize=64x48"]),
])
def test_counts_match_the_server(server, method, server_method, flags):
    target, metrics_port = server
    before = served(metrics_port, server_method)
    result = bench(target, f"--method={method}", *flags)
    after = served(metrics_port, server_method)
    assert result["method"] == method and result["tool"] == "dinov3-bench"
    assert result["mode"] == ("open" if "--rate=20" in flags else "closed")
    calls = 0
    for point in result["points"]:
        assert point["errors"] == {}
        assert point["requests"] > 0 and point["images_per_second"] > 0
        assert point["latency_ms"]["p50"] <= point["latency_ms"]["p99"] <= point["latency_ms"]["max"]
        assert point["server_ms"]["inference"] > 0 and point["server_ms"]["batch_size"] >= 1
        assert point["response_bytes"] > 0
        assert point["calls"] >= point["requests"]
        calls += point["calls"]
    # Every call the bench made was answered once by the server, warm-up included.
    assert after - before == calls


def test_patch_tokens_and_dtype_change_the_response_size(server):
    target, _ = server
    flags = ["--concurrency=1", "--outputs=patch_tokens"]
    f32 = bench(target, *flags, "--dtype=float32")["points"][0]["response_bytes"]
    f16 = bench(target, *flags, "--dtype=float16")["points"][0]["response_bytes"]
    tokens_bytes = 196 * 384 * 4  # 14x14 patches of vits16 in float32
    assert tokens_bytes < f32 < tokens_bytes + 1024
    assert tokens_bytes / 2 < f16 < tokens_bytes / 2 + 1024


def test_request_errors_are_counted_by_code(server):
    target, metrics_port = server
    before = served(metrics_port, "Embed", "INVALID_ARGUMENT")
    # 100 is not a multiple of the patch size: every call fails.
    result = bench(target, "--concurrency=2", "--resize=100x100", ERRORS_ONLY)
    point = result["points"][0]
    assert point["requests"] == 0
    assert point["errors"]["INVALID_ARGUMENT"] > 0
    assert served(metrics_port, "Embed", "INVALID_ARGUMENT") - before == point["calls"]


def test_model_flag_names_the_served_model(server):
    target, metrics_port = server
    before = served(metrics_port, "Embed", "NOT_FOUND")
    assert bench(target, "--concurrency=1", "--model=model:2")["model"] == "model:2"
    result = bench(target, "--concurrency=1", "--model=model:1,nope:1")
    point = result["points"][0]
    assert point["requests"] > 0 and point["errors"]["NOT_FOUND"] > 0
    # The requests alternate exactly (one caller): every second call names no served model.
    not_found = served(metrics_port, "Embed", "NOT_FOUND") - before
    assert abs(2 * not_found - point["calls"]) <= 1, (not_found, point["calls"])


def test_files_are_sent_encoded(server, tmp_path):
    target, _ = server
    from PIL import Image
    import numpy as np
    paths = []
    for i, size in enumerate([(40, 30), (64, 64)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((size[1], size[0], 3), 50 * i, np.uint8)).save(path)
        paths.append(str(path))
    result = bench(target, "--concurrency=1", f"--images={','.join(paths)}")
    assert result["image"].startswith("files: ")
    assert result["points"][0]["errors"] == {}


@pytest.mark.parametrize("flags,status", [
    (["--concurrency=1", "--rate=5"], 2),
    (["--concurrency=0"], 2),
    (["--method=stream", "--rate=5"], 2),
    (["--protocol=http", "--method=dense"], 2),
    (["--outputs=everything"], 2),
    (["--images=/no/such/file.png"], 1),
])
def test_bad_flags(server, flags, status):
    target, _ = server
    out = subprocess.run([BENCH, f"--target={target}", *QUICK, *flags],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == status, out.stderr
    assert "dinov3-bench:" in out.stderr


# Each protocol with the generated raw image (PIXELS) where it can carry one, and with files
# (IMAGE / data URLs), several per request; the server method whose counter it moves.
PROTOCOLS = [
    ("oip-grpc", "ModelInfer", ["--concurrency=1,2"]),
    ("oip-grpc", "ModelInfer", ["--rate=20", "--max_outstanding=4", "--model=model",
                                "--outputs=cls,patch_tokens,registers", "--dtype=bfloat16",
                                "--image_size=64x48", "--resize=64x48"]),
    ("oip-grpc", "ModelInfer", ["--concurrency=2", "--images_per_request=3", "--dtype=float16",
                                "FILES"]),
    ("oip-rest", "RestModelInfer", ["--concurrency=1,2", "--model=model"]),
    ("oip-rest", "RestModelInfer", ["--concurrency=2", "--model=model:2", "--images_per_request=2",
                                    "--outputs=pooled,patch_tokens", "--dtype=float16", "FILES"]),
    ("openai", "OpenAIEmbeddings", ["--concurrency=1,2", "FILES"]),
    ("openai", "OpenAIEmbeddings", ["--rate=20", "--max_outstanding=4", "--model=model",
                                    "--images_per_request=2", "--openai_encoding=float",
                                    "--outputs=pooled", "FILES"]),
]


@pytest.mark.parametrize("protocol,server_method,flags", PROTOCOLS)
def test_other_front_doors_count_match_the_server(doors, image_files, protocol, server_method,
                                                  flags):
    _, metrics_port, http_target = doors
    target = doors[0] if protocol == "oip-grpc" else http_target
    flags = [f"--images={image_files}" if flag == "FILES" else flag for flag in flags]
    before = served(metrics_port, server_method, model="model")
    result = bench(target, f"--protocol={protocol}", *flags)
    after = served(metrics_port, server_method, model="model")
    assert result["protocol"] == protocol
    assert_counted(result, after - before)


def test_oip_outputs_and_dtype_change_the_response_size(doors):
    target, _, http_target = doors
    tokens_bytes = 196 * 384 * 4  # 14x14 patches of vits16 in float32
    for protocol, where, extra in [("oip-grpc", target, []),
                                   ("oip-rest", http_target, ["--model=model"])]:
        flags = ["--concurrency=1", "--outputs=patch_tokens", f"--protocol={protocol}", *extra]
        f32 = bench(where, *flags, "--dtype=float32")["points"][0]["response_bytes"]
        f16 = bench(where, *flags, "--dtype=float16")["points"][0]["response_bytes"]
        assert tokens_bytes < f32 < tokens_bytes + 1024, protocol
        assert tokens_bytes / 2 < f16 < tokens_bytes / 2 + 1024, protocol


@pytest.mark.parametrize("protocol,server_method,error", [
    ("oip-grpc", "ModelInfer", "NOT_FOUND"),
    ("oip-rest", "RestModelInfer", "HTTP_404"),
    ("openai", "OpenAIEmbeddings", "HTTP_404"),
])
def test_other_front_doors_count_errors(doors, image_files, protocol, server_method, error):
    """An unknown model: every call fails, the run still exits 0, and the server counted each
    under NOT_FOUND."""
    _, metrics_port, http_target = doors
    target = doors[0] if protocol == "oip-grpc" else http_target
    before = served(metrics_port, server_method, "NOT_FOUND")
    result = bench(target, f"--protocol={protocol}", "--concurrency=2", "--model=nope",
                   f"--images={image_files}", ERRORS_ONLY)
    point = result["points"][0]
    assert point["requests"] == 0
    # Errors of the measured windows; calls: every call, warm-up included.
    assert list(point["errors"]) == [error] and point["errors"][error] > 0
    assert served(metrics_port, server_method, "NOT_FOUND") - before == point["calls"]


@pytest.mark.parametrize("flags", [
    ["--protocol=bogus"],
    ["--protocol=oip-rest"],  # no --model: the path needs it
    ["--protocol=oip-grpc", "--method=stream"],
    ["--protocol=openai"],  # raw pixels: OpenAI takes files only
    ["--protocol=openai", "FILES", "--outputs=patch_tokens"],
    ["--protocol=openai", "FILES", "--dtype=float16"],
    ["--protocol=openai", "FILES", "--openai_encoding=hex"],
])
def test_other_front_doors_bad_flags(doors, image_files, flags):
    _, _, http_target = doors
    flags = [f"--images={image_files}" if flag == "FILES" else flag for flag in flags]
    out = subprocess.run([BENCH, f"--target={http_target}", *QUICK, *flags],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "dinov3-bench:" in out.stderr


def test_unreachable_target_exits_1():
    out = subprocess.run([BENCH, f"--target=127.0.0.1:{free_port()}", *QUICK],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "cannot connect" in out.stderr
