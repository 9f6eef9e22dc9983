"""Shared by the tests that check the server's metrics with Debian's Prometheus tools
(tests/integration/python/test_metrics.py, tests/deploy/test_monitoring.py): the tools, a
scrape of the server, a real Prometheus on loopback and its HTTP API, and a steady Embed load.

A missing tool fails the test (pytest.fail); nothing is skipped.
"""
import contextlib
import json
import shutil
import subprocess
import threading
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tests.integration.python.server_process import free_port


def tool(name):
    """Path of promtool or prometheus."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: install Debian's prometheus package (scripts/setup.sh)",
                    pytrace=False)
    return path


def scrape(port):
    """The server's /metrics text, checked to be the text exposition format."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return response.read().decode()


def samples(text):
    """{'name{label="v",...}': value} of a text exposition (labels sorted as the server wrote)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def random_image(seed, size=(48, 64)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


@contextlib.contextmanager
def running_prometheus(config_path, work_dir):
    """A Prometheus server with `config_path`, its data and log (prometheus.log) in `work_dir`;
    yields its HTTP port. Stopped on exit."""
    port = free_port()
    with open(work_dir / "prometheus.log", "w") as log:
        proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config_path}",
             f"--storage.tsdb.path={work_dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def prometheus_log(work_dir):
    return (work_dir / "prometheus.log").read_text()[-3000:]


def prometheus_api(port, path, **params):
    """The `data` of a Prometheus HTTP API answer (/api/v1/<path>); OSError while it starts."""
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


@contextlib.contextmanager
def embedding_load(client):
    """Embeds one small random image after another on a background thread until exit."""
    stop = threading.Event()

    def load():
        seed = 0
        while not stop.is_set():
            client.embed([random_image(seed)])
            seed += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()
