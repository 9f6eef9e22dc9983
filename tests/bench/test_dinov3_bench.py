"""dinov3-bench against the real server: each method and load mode runs without errors, its
call counts agree exactly with the server's own counters, request errors are counted by status
code, and bad flags or an unreachable target give the documented exit status.

Short runs on the depth-1 test model; nothing here checks speed.
"""
import json
import os
import subprocess
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration", "python"))
from server_process import BIN_DIR, export_random_model, free_port, running_server  # noqa: E402

BENCH = os.path.join(BIN_DIR, "dinov3-bench")
QUICK = ["--warmup_seconds=0.2", "--window_seconds=0.3", "--min_window_calls=1",
         "--stable_windows=2", "--stability=0.5", "--max_seconds=3", "--progress=false"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bench")
    model = export_random_model(directory, seed=4)
    metrics_port = free_port()
    with running_server(model, str(directory / "server.log"), "--max_batch_size=4",
                        f"--metrics_listen=127.0.0.1:{metrics_port}") as (target, _):
        yield target, metrics_port


def bench(target, *flags):
    out = subprocess.run([BENCH, f"--target={target}", *QUICK, *flags, "--json=-"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def served(metrics_port, method, code="OK"):
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    # Summed over the model label (the served model, or "(unknown)").
    key = f'dinov3_requests_total{{code="{code}",method="{method}",model='
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(key))


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
    result = bench(target, "--concurrency=2", "--resize=100x100")  # not a multiple of 16
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


def test_unreachable_target_exits_1():
    out = subprocess.run([BENCH, f"--target=127.0.0.1:{free_port()}", *QUICK],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "cannot connect" in out.stderr
