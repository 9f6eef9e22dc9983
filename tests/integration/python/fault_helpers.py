"""Helpers for the fault tests (test_faults.py) against the real dinov3-server binary.

  - `write_fault_model`: a TorchScript module that honours the server's model contract
    (DESIGN.md section 4: forward(pixel_values[B,3,H,W]) -> {cls [B,D], registers [B,R,D],
    patch_tokens [B,N,D]}) with the `dinov3.json` metadata copied from a real export, and that
    misbehaves on purpose, per image: a WHITE image (all normalised pixels above 2) makes the
    forward raise (a "poison" input); a BLACK image (all below -1.7) makes it SLOW, so that
    other requests wait in the queue behind it. Any other image (random noise, the server's
    mid-grey warm-up, the all-zero load probe) is fast.
  - `SlowGate` and `GateWait`: what makes the black forward slow, by construction and not by
    a duration: it does not return until the test opens the gate (a one-byte file next to the
    model that the forward re-reads in a loop). Nothing here depends on the speed of the
    machine: a test opens the gate once what it wanted to happen during the slow forward has
    happened. (GateWait also serves other test models, e.g. one whose warm-up never ends.)
  - `FaultServer`: the server started with such a model (gate closed), its /metrics port read
    from its log, `release_slow()` (opens the gate), `barrier()` (the server has read what the
    client sent before), and polling helpers (`wait_for`, `wait_idle`, `wait_running`) so that
    tests wait on events the server exposes instead of sleeping. Stopping it opens the gate
    first, so that a held forward never holds the drain.
  - `Counters`: a /metrics snapshot, the value of the served model's series (`model`: they carry
    a model="NAME" label, NAME the model file's stem), and the delta of its
    dinov3_requests_total by method and code.
  - `code_of`: the final gRPC status code of a call future.
"""
import json
import os
import re
import time
import zipfile
from typing import Dict

import grpc
import numpy as np
import pytest
import torch

from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import (metrics_port, start_server, stop_server,
                                                     tail)
from dinov3_client import embedding_pb2_grpc  # noqa: E402  (path set by server_process)

# Normalised pixels (x/255 - mean) / std: white is about 2.25..2.64, black -2.12..-1.80, the
# warm-up's grey 128 about 0.07, the probe's zeros 0.
POISON_ABOVE = 2.0
SLOW_BELOW = -1.7
# Safety valve, not a duration: a gated forward whose gate is never opened (a test that died
# without stopping its server) gives up with an error after this many polls of the gate file
# (each one opens, maps and reads the file: about 30 us here, so hours; minutes on any CPU).
MAX_GATE_POLLS = 200_000_000
POISON_MESSAGE = "FAULT-MODEL-SECRET poisoned input"
WAIT_SECONDS = 60  # bound of every poll: a server that never gets there fails the test


class GateWait(torch.nn.Module):
    """Scripted: forward() returns (a zero, to add to an output) once the gate file `gate_path`
    holds a non-zero byte (SlowGate.open), polling it with a little model work in between;
    raises after MAX_GATE_POLLS polls. What makes a test model slow by construction."""

    def __init__(self, gate_path: str):
        super().__init__()
        self.gate_path = gate_path
        self.max_polls = MAX_GATE_POLLS
        self.register_buffer("work", torch.randn(64, 64) / 8.0)

    def forward(self) -> torch.Tensor:
        acc = self.work
        opened = False
        # The read stays inside the loop body: TorchScript treats from_file as pure, and a
        # `while <read>` condition is computed once before the loop and merged (CSE) with its
        # copy in the body, so that the gate would be read only once.
        for _ in range(self.max_polls):
            gate = torch.from_file(self.gate_path, shared=False, size=1, dtype=torch.uint8)
            if bool(gate[0] != 0):
                opened = True
                break
            acc = torch.tanh(acc @ self.work)
        if not opened:
            raise RuntimeError("test model: its slow gate was never opened")
        return acc.mean() * 0.0


class FaultModel(torch.nn.Module):
    """Cheap contract-following outputs; raises on white images; on black ones, waits until the
    gate file `gate_path` is opened (GateWait)."""

    def __init__(self, dim: int, registers: int, patch: int, gate_path: str):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3, dim)
        self.wait_gate = GateWait(gate_path)
        self.num_registers = registers
        self.patch = patch
        self.poison_above = POISON_ABOVE
        self.slow_below = SLOW_BELOW

    def forward(self, pixel_values: torch.Tensor) -> Dict[str, torch.Tensor]:
        per_image = pixel_values.flatten(1)
        if bool((per_image.min(1).values > self.poison_above).any()):
            raise RuntimeError("FAULT-MODEL-SECRET poisoned input")
        extra = torch.zeros(1)
        if bool((per_image.max(1).values < self.slow_below).any()):
            extra = self.wait_gate().reshape(1)
        grid = torch.nn.functional.avg_pool2d(pixel_values, self.patch)  # [B,3,h,w]
        tokens = self.proj(grid.flatten(2).transpose(1, 2))  # [B,h*w,D]
        cls = tokens.mean(1) + extra
        registers = torch.stack([cls * float(i + 1) for i in range(self.num_registers)], 1)
        return {"cls": cls, "registers": registers, "patch_tokens": tokens}


class SlowGate:
    """The one-byte file a fault model's black forward polls: 0 holds it, 1 lets it finish.
    Written by rename, never in place: the server maps the file, and truncating a mapped file
    would crash it (SIGBUS)."""

    def __init__(self, path):
        self.path = str(path)

    @staticmethod
    def of_model(model_path):
        """The gate of a model written by write_fault_model."""
        return SlowGate(str(model_path) + ".gate")

    def _write(self, value):
        fresh = f"{self.path}.{os.getpid()}.new"
        with open(fresh, "wb") as f:
            f.write(bytes([value]))
        os.replace(fresh, self.path)

    def close(self):
        """Black forwards started from now on (and any running) wait for open()."""
        self._write(0)

    def open(self):
        """Every black forward, running or future, finishes."""
        self._write(1)

    def is_open(self):
        with open(self.path, "rb") as f:
            return f.read(1) != b"\x00"


def read_metadata(exported_model):
    """The dinov3.json text inside a model written by `python -m model.export`."""
    with zipfile.ZipFile(exported_model) as archive:
        name = next(n for n in archive.namelist() if n.endswith("extra/dinov3.json"))
        return archive.read(name).decode()


def save_contract_model(make_module, exported_model, path):
    """Scripts make_module(metadata dict) and saves it at `path` with `exported_model`'s
    dinov3.json, so that the server loads it like an export; returns path."""
    metadata = read_metadata(exported_model)
    module = torch.jit.script(make_module(json.loads(metadata)).eval())
    torch.jit.save(module, str(path), _extra_files={"dinov3.json": metadata})
    return str(path)


def write_fault_model(exported_model, path):
    """A scripted FaultModel with `exported_model`'s metadata at `path`, and its gate
    (SlowGate.of_model(path)), closed; returns path."""
    gate = SlowGate.of_model(path)
    gate.close()
    return save_contract_model(
        lambda m: FaultModel(m["embed_dim"], m["num_registers"], m["patch_size"], gate.path),
        exported_model, path)


def noise(seed, size=(32, 32)):
    """A random RGB image: a fast, valid input."""
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def white(size=(32, 32)):
    """The poison input: the fault model raises on it."""
    return np.full((*size, 3), 255, dtype=np.uint8)


def black(size=(32, 32)):
    """The slow input: the fault model's forward on it waits until its gate is opened."""
    return np.zeros((*size, 3), dtype=np.uint8)


def slow_reader(target):
    """(channel, stub) of a client on its own connection whose receive window stays at the
    HTTP/2 default (no BDP growth): a stream it does not read stalls the server's writes after
    about 64 KiB instead of after several MiB of buffering."""
    channel = grpc.insecure_channel(target, [("grpc.http2.bdp_probe", 0),
                                             ("grpc.max_receive_message_length", 64 << 20),
                                             ("grpc.max_send_message_length", 64 << 20)])
    return channel, embedding_pb2_grpc.EmbeddingServiceStub(channel)


def wait_log(server, text):
    """Polls the server's log until it contains `text`; fails the test after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in server.log():
        if server.proc.poll() is not None and text not in server.log():
            pytest.fail(f"server exited ({server.proc.returncode}) before logging {text!r}:\n"
                        f"{tail(server.log_path)}")
        if time.monotonic() > deadline:
            pytest.fail(f"not logged in {WAIT_SECONDS} s: {text!r}\n{tail(server.log_path)}")
        time.sleep(0.02)


def code_of(future):
    """Final status code of a grpc call future (blocks until it has one)."""
    if future.cancelled():
        return grpc.StatusCode.CANCELLED
    error = future.exception()
    return grpc.StatusCode.OK if error is None else error.code()


def model_name(model_path):
    """The name the server gives a model served with --model=PATH (and no model.name): the
    file's stem, e.g. "fault" for fault.pt. The `model` label of its series."""
    return os.path.splitext(os.path.basename(str(model_path)))[0]


class Counters:
    """One /metrics snapshot of a server that serves the model named `model`."""

    def __init__(self, port, model):
        self.values = samples(scrape(port))
        self.model = model

    def get(self, key):
        """The sample `key` exactly as scraped (e.g. "dinov3_inflight_requests"), 0 if absent."""
        return self.values.get(key, 0.0)

    def key(self, name, **labels):
        """The key of series `name` of this model with `labels`, as the server writes it
        (labels sorted; a histogram's le, not allowed here, would come last)."""
        labels = dict(labels, model=self.model)
        return name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"

    def of_model(self, name, **labels):
        """The value of series `name` of this model with `labels`, e.g.
        of_model("dinov3_rejected_total", reason="cancelled"). The server creates every
        per-model series at start, so an absent one fails the test (a wrong name or label)
        instead of reading as 0."""
        key = self.key(name, **labels)
        if key not in self.values:
            family = [k for k in self.values if k.startswith(name)]
            pytest.fail(f"no series {key} in /metrics; {name}: {family}")
        return self.values[key]

    def requests(self, method):
        """{code: count} of this model's dinov3_requests_total for `method`."""
        pattern = re.compile(r'dinov3_requests_total\{code="(\w+)",method="' + re.escape(method)
                             + r'",model="' + re.escape(self.model) + r'",protocol="[\w-]+"\}')
        out = {}
        for key, value in self.values.items():
            match = pattern.fullmatch(key)
            if match and value:
                out[match.group(1)] = value
        return out

    def delta(self, before, method):
        """{code: count} of the requests of `method` finished since `before` (zeros dropped)."""
        now, then = self.requests(method), before.requests(method)
        return {code: int(now[code] - then.get(code, 0)) for code in now
                if now[code] != then.get(code, 0)}


class FaultServer:
    """dinov3-server on loopback (start_server), with its metrics port and polling helpers. For
    a model of write_fault_model, its slow gate is closed at start (`gate`, `release_slow`).
    `client_kwargs` go to start_server (e.g. credentials= for a TLS server)."""

    def __init__(self, model, log_path, *flags, **client_kwargs):
        self.log_path = str(log_path)
        self.model = model_name(model)  # the `model` label of its series
        gate = SlowGate.of_model(model)
        self.gate = gate if os.path.exists(gate.path) else None
        if self.gate is not None:
            self.gate.close()
        self.proc, self.target, self.client = start_server(model, self.log_path, *flags,
                                                           **client_kwargs)
        try:
            self.metrics_port = metrics_port(self.log_path)
        except BaseException:
            self.stop()
            raise
        self.stub = self.client.stub

    def barrier(self):
        """One round trip on the client's connection (a health check). HTTP/2 frames of a
        connection are read in order, so once it is answered the server has read what the
        client sent on it before, e.g. the RST_STREAM of a call it cancelled: call it between a
        cancel() and release_slow(), or the worker could take the cancelled request before the
        server knows. Instead of the duration of a slow forward."""
        assert self.client.health() == "SERVING"

    def release_slow(self):
        """Lets every held (and every later) black forward finish."""
        assert self.gate is not None, "not a fault model (write_fault_model) server"
        self.gate.open()

    def stop(self):
        if self.gate is not None:
            self.gate.open()  # a held forward would hold the drain
        return stop_server(self.proc, self.client)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def counters(self):
        return Counters(self.metrics_port, self.model)

    def log(self):
        return tail(self.log_path, 10**6)

    def access_log(self, last=20):
        """The last `last` access-log lines (one per finished request), for failure messages."""
        lines = [line for line in self.log().splitlines() if "[access]" in line]
        return "\n".join(lines[-last:])

    def wait_for(self, predicate, what):
        """Polls predicate(Counters) until true; fails the test after WAIT_SECONDS."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            counters = self.counters()
            if predicate(counters):
                return counters
            if self.proc.poll() is not None:
                pytest.fail(f"server exited ({self.proc.returncode}) waiting for {what}:\n"
                            f"{tail(self.log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(f"not reached in {WAIT_SECONDS} s: {what}\n{tail(self.log_path)}")
            time.sleep(0.02)

    def wait_idle(self):
        """Every accepted request answered: in-flight gauge and queue back to 0."""
        return self.wait_for(lambda c: c.get("dinov3_inflight_requests") == 0
                             and c.of_model("dinov3_queue_images") == 0,
                             "in-flight requests and queued images back to 0")

    def wait_running(self, before, images=1):
        """Waits until `images` more images were decoded since `before` and none is queued or
        being decoded: the (single) worker has taken them (it runs a slow one)."""
        key = "dinov3_preprocess_duration_seconds_count"

        def running(c):
            return (c.of_model(key) - before.of_model(key) >= images
                    and c.of_model("dinov3_queue_images") == 0
                    and c.get("dinov3_inflight_requests") >= 1)
        self.wait_for(running, f"{images} image(s) decoded and taken by the worker")
        # Twice: a scrape between decoding and queueing would also see an empty queue.
        return self.wait_for(running, f"{images} image(s) taken by the worker")

    def wait_queued(self, images):
        return self.wait_for(lambda c: c.of_model("dinov3_queue_images") == images,
                             f"{images} image(s) waiting in the queue")
