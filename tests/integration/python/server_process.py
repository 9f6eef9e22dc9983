"""Starts the real dinov3-server binary on a free loopback port for a test and stops it.

`running_server(model_path, log_path)` is a context manager yielding (target, client): it waits
(<= STARTUP_SECONDS) for health SERVING, fails the test with the server's log if it exits or
never gets there, fails (never skips) when the binary is missing, and stops it with SIGTERM
(then SIGKILL after STOP_SECONDS).

The limits here are hang guards, not durations: each is many times what it bounds on the 2-core
machine of the CI (the test models load and warm up in seconds, calls take milliseconds to
seconds), so that the tests pass as well on a machine several times slower or loaded.
"""
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
from dinov3_client import EmbeddingClient, EmbeddingError  # noqa: E402

BIN_DIR = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"), "bin")
SERVER = os.path.join(BIN_DIR, "dinov3-server")
STARTUP_SECONDS = 300  # model load and warm-up
CALL_SECONDS = 300  # default deadline of the client's calls (EmbeddingClient timeout)
STOP_SECONDS = 60  # SIGTERM to exit: the drain (10 s by default) and the teardown


def export_random_model(directory, seed, depth=1, variant="vits16", name="model.pt"):
    """Exports a random `variant` with `depth` blocks (a fast test model) into
    `directory`/`name`."""
    path = os.path.join(str(directory), name)
    subprocess.run([sys.executable, "-m", "model.export", "--random", "--variant", variant,
                    "--depth", str(depth), "--seed", str(seed), "--output", path],
                   cwd=ROOT, check=True, capture_output=True)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=4000):
    with open(path, errors="replace") as f:
        return f.read()[-n:]


def wait_serving(proc, client, log_path):
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dinov3-server exited with {proc.returncode} before SERVING:\n"
                        f"{tail(log_path)}", pytrace=False)
        try:
            if client.health() == "SERVING":
                return
        except EmbeddingError:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"dinov3-server not SERVING after {STARTUP_SECONDS} s:\n{tail(log_path)}",
                pytrace=False)


def metrics_port(log_path):
    """The /metrics port a server wrote to its log at start-up."""
    match = re.search(r"metrics on http://\S+ \(port (\d+)", tail(log_path, 10**6))
    if match is None:
        pytest.fail(f"no metrics port in the server log:\n{tail(log_path)}", pytrace=False)
    return int(match.group(1))


def http_port(log_path):
    """The HTTP front doors' port a server wrote to its log at start-up."""
    match = re.search(r"HTTP front doors on https?://\S+ \(port (\d+)", tail(log_path, 10**6))
    if match is None:
        pytest.fail(f"no HTTP port in the server log:\n{tail(log_path)}", pytrace=False)
    return int(match.group(1))


def start_server(model_path, log_path, *extra_flags, server=SERVER, target=None,
                 **client_kwargs):
    """Starts the `server` binary and waits for SERVING; returns (process, target, client).
    `model_path` None: no --model (the models come from a --config file in `extra_flags`).
    `target` None: a free loopback port.
    `client_kwargs` go to EmbeddingClient (credentials=, api_key=, options=, timeout= whose
    default here is CALL_SECONDS)."""
    if not os.access(server, os.X_OK):
        pytest.fail(f"{server} is missing: build it first (scripts/build.sh)", pytrace=False)
    target = target or f"127.0.0.1:{free_port()}"
    with open(log_path, "w") as log:
        # Metrics and HTTP on any free port unless the test names one: tests run in parallel.
        model_flag = [f"--model={model_path}"] if model_path is not None else []
        proc = subprocess.Popen([server, *model_flag, f"--listen={target}",
                                 "--device=cpu", "--metrics_listen=127.0.0.1:0",
                                 "--http_listen=127.0.0.1:0", *extra_flags],
                                stdout=log, stderr=subprocess.STDOUT)
    client_kwargs.setdefault("timeout", CALL_SECONDS)
    client = EmbeddingClient(target, **client_kwargs)
    try:
        wait_serving(proc, client, log_path)
    except BaseException:
        stop_server(proc, client)
        raise
    return proc, target, client


def stop_server(proc, client):
    """SIGTERM (the server drains), then SIGKILL after STOP_SECONDS; returns the exit status."""
    client.close()
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@contextlib.contextmanager
def running_server(model_path, log_path, *extra_flags, **client_kwargs):
    proc, target, client = start_server(model_path, log_path, *extra_flags, **client_kwargs)
    try:
        yield target, client
    finally:
        stop_server(proc, client)
