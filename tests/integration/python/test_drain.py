"""Graceful shutdown under load: SIGTERM while requests are queued and running. Every accepted
request gets exactly one final answer (here all OK: the grace period is long enough), none is
dropped, new calls after the signal are refused with UNAVAILABLE, and the process exits 0.
"""
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

from tests.integration.python.server_process import ROOT, start_server, stop_server

CLIENTS = 12


def test_sigterm_drains_accepted_work(tmp_path):
    model = str(tmp_path / "model.pt")
    subprocess.run([sys.executable, "-m", "model.export", "--random", "--variant", "vits16",
                    "--depth", "4", "--seed", "2", "--output", model],
                   cwd=ROOT, check=True, capture_output=True)
    proc, _, client = start_server(model, str(tmp_path / "server.log"), "--max_batch_size=1",
                                   "--drain_seconds=60")
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    request = client.build_request([image])
    answers, lock, sent = [], threading.Lock(), threading.Barrier(CLIENTS + 1)

    def call():
        future = client.stub.Embed.future(request, timeout=120)
        sent.wait()
        try:
            future.result()
            code = grpc.StatusCode.OK
        except grpc.RpcError as e:
            code = e.code()
        with lock:
            answers.append(code)

    threads = [threading.Thread(target=call) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    sent.wait()
    time.sleep(0.3)  # let the calls reach the server (not a timing assertion)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        client.stub.Embed(request, timeout=30)
        late = grpc.StatusCode.OK
    except grpc.RpcError as e:
        late = e.code()
    assert late == grpc.StatusCode.UNAVAILABLE  # refused while draining
    for t in threads:
        t.join()
    assert len(answers) == CLIENTS
    assert all(code == grpc.StatusCode.OK for code in answers), answers
    assert proc.wait(timeout=60) == 0
    stop_server(proc, client)  # already exited: only closes the channel


def test_sigterm_ends_open_streams_after_answering_them(tmp_path):
    """An idle open StreamEmbed must not hold the drain for the whole grace period: its accepted
    requests are answered, then the stream ends with UNAVAILABLE and the server exits."""
    model = str(tmp_path / "model.pt")
    subprocess.run([sys.executable, "-m", "model.export", "--random", "--variant", "vits16",
                    "--depth", "1", "--output", model], cwd=ROOT, check=True, capture_output=True)
    proc, _, client = start_server(model, str(tmp_path / "server.log"), "--drain_seconds=120")
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    release = threading.Event()

    def requests():
        for i in range(2):
            yield client.build_request([image], request_id=f"r{i}")
        release.wait(120)  # keep the stream open without half-closing it

    stream = client.stub.StreamEmbed(requests(), timeout=120)
    answered = [next(stream).request_id for _ in range(2)]
    assert sorted(answered) == ["r0", "r1"]
    proc.send_signal(signal.SIGTERM)
    try:
        with pytest.raises(grpc.RpcError) as ended:
            next(stream)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert proc.wait(timeout=60) == 0  # well before the 120 s grace
    finally:
        release.set()
        stop_server(proc, client)
