"""Memory bounds under hostile load, against the real dinov3-server (SECURITY.md "Memory bounds").

Each test is a finding of the hostile-load review, as a regression test:
  - a response above protobuf's 2 GiB (the shapes of vit7b16, from a stand-in module that
    returns zeros) is refused INVALID_ARGUMENT before any work, and the server lives on;
  - non-reading StreamEmbed clients, more streams on one connection than
    server.max_concurrent_streams: the budget in use and the resident memory stay bounded,
    other clients are served, and everything is given back when the streams go;
  - a stream whose client sets no deadline and never reads is cancelled after
    server.max_call_seconds;
  - the PNG bomb (solid 8000x5000 PNGs, about 120 KB each): refused when it can never fit,
    RESOURCE_EXHAUSTED (memory_budget) when several clients send it at once; resident memory
    stays under the budget plus a margin;
  - SIGTERM while the model warms up: exit status 0 at once, never SERVING.

Memory assertions read the server's own /proc/PID/status (VmRSS, VmHWM) and compare with the
configured budget: bounds, not timings. Every wait polls a condition the server exposes, bounded
by WAIT_SECONDS.
"""
import io
import json
import re
import signal
import subprocess
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import torch
from PIL import Image

from tests.integration.python.fault_helpers import GateWait, SlowGate, read_metadata, slow_reader
from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import (SERVER, EmbeddingError,
                                                     export_random_model, free_port,
                                                     metrics_port, running_server, start_server,
                                                     stop_server, tail)
from dinov3_client import embedding_pb2 as pb2  # noqa: E402  (path set by server_process)
MiB = 1 << 20
WAIT_SECONDS = 120
# Resident memory the server may hold beyond (idle + budget): allocator slack and what the
# budget does not count (gRPC's own buffers, at most server.grpc_memory_bytes; the model's
# activations of one batch).
RSS_MARGIN = 512 * MiB
# The name the server gives the `model` fixture (export_random_model's model.pt): the model
# label of its series.
MODEL = "model"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=14)


def proc_status(pid):
    """{'VmRSS': bytes, 'VmHWM': bytes} of a process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def metric(log_path, name):
    """The sample `name` (with its labels, as the server writes them) of the server's /metrics;
    absent fails the test (a wrong name or label set must not read as 0)."""
    values = samples(scrape(metrics_port(str(log_path))))
    assert name in values, (name, [key for key in values if key.startswith(name.split("{")[0])])
    return values[name]


def wait_until(condition, what, log_path):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"not within {WAIT_SECONDS} s: {what}\n{tail(str(log_path))}", pytrace=False)


def gray(size=16):
    return np.full((size, size), 128, dtype=np.uint8)


def fixed(side):
    return {"mode": "fixed", "height": side, "width": side}


class ZerosModel(torch.nn.Module):
    """Follows the server's model contract with zeros of the right shapes, whatever the size."""

    def __init__(self, dim: int, registers: int, patch: int):
        super().__init__()
        self.dim = dim
        self.registers = registers
        self.patch = patch

    def forward(self, pixel_values: torch.Tensor):
        b = pixel_values.size(0)
        n = (pixel_values.size(2) // self.patch) * (pixel_values.size(3) // self.patch)
        return {"cls": torch.zeros(b, self.dim),
                "registers": torch.zeros(b, self.registers, self.dim),
                "patch_tokens": torch.zeros(b, n, self.dim)}


@pytest.fixture(scope="module")
def vit7b_standin(model, tmp_path_factory):
    """A zeros module with vit7b16's metadata (dim 4096, 32 heads, 40 blocks)."""
    metadata = json.loads(read_metadata(model))
    metadata.update(variant="vit7b16", embed_dim=4096, num_heads=32, depth=40)
    module = torch.jit.script(ZerosModel(4096, metadata["num_registers"], metadata["patch_size"]))
    path = tmp_path_factory.mktemp("standin") / "vit7b16_zeros.pt"
    torch.jit.save(module, str(path), _extra_files={"dinov3.json": json.dumps(metadata)})
    return str(path)


def test_response_above_2gib_is_refused_before_any_work(vit7b_standin, tmp_path):
    log = tmp_path / "server.log"
    proc, target, client = start_server(vit7b_standin, str(log), "--max_pixels=4000000",
                                        "--memory_budget_bytes=" + str(2 << 30))
    try:
        # 40 images x 4096 patches x 4096 x float32 = 2.68 GB of patch tokens.
        with pytest.raises(Exception) as refused:
            client.embed([gray()] * 40, outputs=["patch_tokens"], preprocess=fixed(1024))
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
        # 40 x (4096 x 4096 x 4 + 1 KiB per embedding) bytes, from the headers alone.
        assert ("the response would be 2684395520 bytes, above the largest message protobuf "
                "can encode (2147483647 bytes)") in refused.value.details
        # Below 2 GiB but above the whole budget: refused as never fitting, with the numbers.
        with pytest.raises(Exception) as too_big:
            client.embed([gray()] * 16, outputs=["patch_tokens"], preprocess=fixed(1024))
        assert too_big.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert re.search(r"the request needs \d+ bytes of server memory \(request \d+ \+ decoded "
                         r"pixels \d+ \+ model inputs \d+ \+ model outputs \d+ \+ response 2 x \d+ "
                         r"bytes\), above the \d+ bytes of the memory budget \(2147483648 bytes, "
                         r"limits.memory_budget_bytes\) requests may ever hold", too_big.value.details)
        # Alive and serving; a large answer that fits is computed.
        assert client.health() == "SERVING"
        [result] = client.embed([gray()], outputs=["patch_tokens"], preprocess=fixed(1024))
        assert result.patch_tokens.shape == (4096, 4096)
        values = samples(scrape(metrics_port(str(log))))
        # The served model is named after its file, vit7b16_zeros.pt.
        assert values['dinov3_rejected_total{model="vit7b16_zeros",reason="too_large"}'] == 2
        assert values['dinov3_requests_total{code="INVALID_ARGUMENT",method="Embed",'
                      'model="vit7b16_zeros",protocol="dinov3"}'] == 2
        assert "EmbedResponse exceeded maximum protobuf size" not in tail(str(log), 10**6)
    finally:
        assert stop_server(proc, client) == 0


def stream_requests(count, images, side):
    """`count` StreamEmbed requests of `images` raw 16x16 images resized to side x side, with
    patch tokens (answers of about images * side^2/256 * 384 * 4 bytes)."""
    raw = pb2.Image(raw=pb2.RawImage(width=16, height=16, format=pb2.GRAY8,
                                     data=gray().tobytes()))
    for i in range(count):
        yield pb2.EmbedRequest(images=[raw] * images, outputs=[pb2.PATCH_TOKENS],
                               preprocess=pb2.Preprocess(mode=pb2.RESIZE_FIXED, height=side,
                                                         width=side),
                               request_id=str(i))


def test_non_reading_streams_stay_within_the_budget(model, tmp_path):
    budget, per_stream, streams_per_connection = 1536 * MiB, 64 * MiB, 4
    log = tmp_path / "server.log"
    proc, target, client = start_server(
        model, str(log), "--max_pixels=4000000", f"--memory_budget_bytes={budget}",
        f"--max_stream_buffered_bytes={per_stream}",
        f"--max_concurrent_streams={streams_per_connection}")
    channel, stub = slow_reader(target)
    calls = []
    try:
        fixed_bytes = metric(log, "dinov3_memory_budget_used_bytes")
        idle = proc_status(proc.pid)["VmRSS"]
        # Twice as many streams as one connection may open; each sends 100 requests of about
        # 34 MB of footprint and never reads an answer.
        for _ in range(2 * streams_per_connection):
            calls.append(stub.StreamEmbed(stream_requests(100, 4, 448)))
        answered = lambda: metric(
            log, f'dinov3_requests_total{{code="OK",method="StreamEmbed",model="{MODEL}",'
            'protocol="dinov3"}')
        # Each open stream holds answers until its bound; then it stops reading.
        wait_until(lambda: metric(log, "dinov3_memory_budget_used_bytes") >=
                   fixed_bytes + streams_per_connection * per_stream,
                   "the open streams filled their share", log)
        wait_until(lambda: answered() >= 2 * streams_per_connection,
                   "the admitted requests were answered", log)
        used = metric(log, "dinov3_memory_budget_used_bytes")
        assert used <= budget
        # No more than the open streams' bounds (plus the request that crossed each one).
        assert used <= fixed_bytes + streams_per_connection * (per_stream + 40 * MiB)
        # Other clients are served meanwhile.
        [result] = client.embed([gray()])
        assert result.cls.shape == (384,)
        rss = proc_status(proc.pid)
        assert rss["VmHWM"] <= idle + budget + RSS_MARGIN, rss
        print(f"idle {idle / MiB:.0f} MiB, peak {rss['VmHWM'] / MiB:.0f} MiB, budget used "
              f"{used / MiB:.0f} MiB of {budget / MiB:.0f}, answered {answered():.0f}")
    finally:
        for call in calls:
            call.cancel()
        channel.close()
    # Everything the streams held is given back.
    wait_until(lambda: metric(log, "dinov3_memory_budget_used_bytes") == fixed_bytes,
               "the budget returned to the fixed transients", log)
    assert stop_server(proc, client) == 0


def test_stream_that_never_reads_is_cancelled_after_max_call_seconds(model, tmp_path):
    log = tmp_path / "server.log"
    proc, target, client = start_server(model, str(log), "--max_pixels=4000000",
                                        "--max_call_seconds=2")
    channel, stub = slow_reader(target)
    try:
        fixed_bytes = metric(log, "dinov3_memory_budget_used_bytes")
        call = stub.StreamEmbed(stream_requests(50, 4, 448))  # no deadline, never read
        wait_until(lambda: "ran past server.max_call_seconds: cancelled" in tail(str(log), 10**6),
                   "the watchdog cancelled the stream", log)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in call:
                pass
        assert ended.value.code() == grpc.StatusCode.CANCELLED
        wait_until(lambda: metric(log, "dinov3_memory_budget_used_bytes") == fixed_bytes,
                   "the cancelled stream gave its memory back", log)
    finally:
        channel.close()
        assert stop_server(proc, client) == 0


@pytest.fixture(scope="module")
def png_bomb():
    """A solid 8000x5000 PNG: about 120 KB that decode to 120 MB of RGB."""
    out = io.BytesIO()
    Image.new("RGB", (8000, 5000), (40, 80, 120)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def test_png_bombs_stay_within_the_budget(model, tmp_path, png_bomb):
    budget = 3 << 30
    log = tmp_path / "server.log"
    proc, target, client = start_server(model, str(log), f"--memory_budget_bytes={budget}",
                                        "--preprocess_threads=2")
    try:
        assert len(png_bomb) < 200_000
        idle = proc_status(proc.pid)["VmRSS"]
        # 24 of them (a 3 MB request, 2.9 GB of pixels) can never fit this budget.
        with pytest.raises(Exception) as never:
            client.embed([png_bomb] * 24)
        assert never.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "of the memory budget (3221225472 bytes, limits.memory_budget_bytes) requests " \
            "may ever hold" in never.value.details
        # Eight of them fit alone; four clients send them at once.

        def send(_):
            try:
                client.embed([png_bomb] * 8)
                return "OK", ""
            except Exception as e:  # EmbeddingError
                return e.code.name, e.details

        with futures.ThreadPoolExecutor(4) as pool:
            outcomes = list(pool.map(send, range(4)))
        for code, details in outcomes:
            assert code in ("OK", "RESOURCE_EXHAUSTED"), (code, details)
            if code == "RESOURCE_EXHAUSTED":
                assert "server memory budget full" in details and \
                    "limits.memory_budget_bytes" in details
        assert ("OK", "") in outcomes
        refused = sum(code == "RESOURCE_EXHAUSTED" for code, _ in outcomes)
        assert metric(log, f'dinov3_rejected_total{{model="{MODEL}",reason="memory_budget"}}') \
            == refused
        rss = proc_status(proc.pid)
        assert rss["VmHWM"] <= idle + budget + RSS_MARGIN, rss
        print(f"outcomes {outcomes}; idle {idle / MiB:.0f} MiB, peak {rss['VmHWM'] / MiB:.0f} "
              f"MiB, budget {budget / MiB:.0f} MiB")
    finally:
        assert stop_server(proc, client) == 0


def test_a_thin_image_cannot_make_a_huge_resize_intermediate(model, tmp_path):
    # 8 wide, 12700 tall (a few KB of PNG) to 16 high x 16384 wide (1024 patches, within every
    # limit): the resize's width pass alone would be 12700 x 16384 x 3 floats, 2.5 GB.
    out = io.BytesIO()
    Image.new("RGB", (8, 12700), (40, 80, 120)).save(out, format="PNG")
    with running_server(model, tmp_path / "server.log") as (_, client):
        with pytest.raises(EmbeddingError) as error:
            client.embed([out.getvalue()], preprocess={"height": 16, "width": 16384})
        assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "image[0]: preprocess: resizing a 8x12700 image to 16384x16 passes through a " \
            "16384x12700 image (208076800 pixels), above 16777216 pixels" in error.value.details
        assert client.embed([out.getvalue()])[0].cls.shape == (384,)  # 224x224 is fine


class SlowModel(torch.nn.Module):
    """Contract outputs (zeros), after waiting on every forward until the gate file `gate_path`
    is opened (fault_helpers.GateWait): slow by construction, whatever the machine."""

    def __init__(self, dim: int, registers: int, patch: int, gate_path: str):
        super().__init__()
        self.inner = ZerosModel(dim, registers, patch)
        self.wait_gate = GateWait(gate_path)

    def forward(self, pixel_values: torch.Tensor):
        extra = self.wait_gate()
        out = self.inner(pixel_values)
        out["cls"] = out["cls"] + extra
        return out


def test_sigterm_during_warm_up_exits_at_once(model, tmp_path):
    # Every forward of this model waits for a gate the test never opens, so the warm-up is
    # still running when the signal comes, on any machine.
    metadata = json.loads(read_metadata(model))
    gate = SlowGate(tmp_path / "slow.gate")
    gate.close()
    slow = torch.jit.script(SlowModel(metadata["embed_dim"], metadata["num_registers"],
                                      metadata["patch_size"], gate.path))
    path = tmp_path / "slow.pt"
    torch.jit.save(slow, str(path), _extra_files={"dinov3.json": json.dumps(metadata)})
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([SERVER, f"--model={path}", f"--listen=127.0.0.1:{free_port()}",
                                 "--device=cpu", "--metrics_listen=127.0.0.1:0",
                                 "--http_listen=127.0.0.1:0"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "health NOT_SERVING until the model is warm" in tail(str(log)),
                   "the server listens and loads the model", log)
        proc.send_signal(signal.SIGTERM)
        # Before the fix the signal waited for the warm-up (many forwards): the process then
        # logged SERVING and drained. Now it ends during the warm-up, with status 0.
        status = proc.wait(timeout=WAIT_SECONDS)
        text = tail(str(log), 10**6)
        assert status == 0, text
        assert "received signal 15 during start-up (nothing accepted yet): exiting" in text
        assert "SERVING dinov3.v1.EmbeddingService" not in text
        assert "model 'slow' loaded and warm" not in text and "loaded and warm in" not in text
    finally:
        gate.open()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
