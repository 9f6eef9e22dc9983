"""Graceful shutdown under load: SIGTERM while requests are queued and running. Every accepted
request gets exactly one final answer (here all OK: the grace period is long enough), none is
dropped, new calls after the signal are refused with UNAVAILABLE, and the process exits 0.

"Queued and running" by construction, not by timing: the first case serves the fault model of
fault_helpers.py, whose forward on a black image is held until the test opens its gate, so the
signal comes while that forward runs and the other calls wait behind it, on any machine.
"""
import signal
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest

from tests.integration.python.fault_helpers import (FaultServer, black, noise, wait_log,
                                                    write_fault_model)
from tests.integration.python.server_process import (CALL_SECONDS, ROOT, export_random_model,
                                                      start_server, stop_server)

CLIENTS = 12


def test_sigterm_drains_accepted_work(tmp_path):
    model = write_fault_model(export_random_model(tmp_path, seed=2), tmp_path / "fault.pt")
    with FaultServer(model, tmp_path / "server.log", "--max_batch_size=1",
                     "--drain_seconds=300") as server:
        before = server.counters()
        answers, lock = [], threading.Lock()

        def call(image):
            future = server.stub.Embed.future(server.client.build_request([image]),
                                              timeout=CALL_SECONDS)
            try:
                future.result()
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            with lock:
                answers.append(code)

        # One call runs (held), the others wait in the queue behind it.
        threads = [threading.Thread(target=call, args=(black(),))]
        threads[0].start()
        server.wait_running(before)
        threads += [threading.Thread(target=call, args=(noise(i),)) for i in range(CLIENTS - 1)]
        for t in threads[1:]:
            t.start()
        server.wait_queued(CLIENTS - 1)
        server.proc.send_signal(signal.SIGTERM)
        # Refused from the moment the server drains (it logs so once it refuses new calls).
        wait_log(server, "draining: waiting up to")
        try:
            server.stub.Embed(server.client.build_request([noise(99)]), timeout=CALL_SECONDS)
            late = grpc.StatusCode.OK
        except grpc.RpcError as e:
            late = e.code()
        assert late == grpc.StatusCode.UNAVAILABLE  # refused while draining
        assert not answers, answers  # the accepted calls are all still waiting
        server.release_slow()
        for t in threads:
            t.join()
        assert len(answers) == CLIENTS
        assert all(code == grpc.StatusCode.OK for code in answers), answers
        assert server.proc.wait(timeout=60) == 0  # a hang guard: it exits once they are answered


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
