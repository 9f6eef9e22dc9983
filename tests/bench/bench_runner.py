"""Process and measurement plumbing of the benchmark suite (tests/bench/run_bench.py).

Starts and stops the servers under test (dinov3-server, the peers of tests/bench/peers), samples
their peak resident memory over the whole process tree, runs the C++ measurement tools
(dinov3-bench, dinov3-model-bench, dinov3-serialization-bench) and the transformers rows
(hf_forward.py), and checks that a peer computes the same CLS embedding as our server before it
is measured. No report logic here.

    with start_ours("ours", model, "cpu", ["--max_batch_size=8"], "ours.log") as server:
        result = run_load(server.target, "grpc", "embed", LoadShape(), "out.json")
    peak_mib, processes = server.memory  # peak RSS of its process tree
"""
import base64
import contextlib
import dataclasses
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN_DIR = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build"), "bin")
PEERS_DIR = os.path.join(ROOT, "tests", "bench", "peers")
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
STARTUP_SECONDS = 180
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
sys.path.insert(0, ROOT)


class BenchError(RuntimeError):
    """A setup failure that must stop the run (missing binary, server died, peer disagrees)."""


def binary(name):
    path = os.path.join(BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise BenchError(f"{path} is missing: build it (scripts/build.sh --target {name})")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


# ---------------------------------------------------------------- memory of a process tree

def _children_map():
    """{ppid: [pid, ...]} of every process visible in /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the (comm)
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root_pid):
    """root_pid and all its descendants that are alive now."""
    children, todo, seen = _children_map(), [root_pid], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(children.get(pid, []))
    return seen


def vm_hwm_kib(pid):
    """Peak resident set size (VmHWM) of one process in KiB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Polls the process tree of `root_pid` and keeps each process's largest VmHWM.

    The peak of the tree is reported as the sum of the per-process peaks (an upper bound of the
    simultaneous peak; pages shared between processes, e.g. the torch libraries of LitServe's
    workers, count once per process). Processes that exit early are still counted.
    """

    def __init__(self, root_pid, interval=0.5):
        self.root_pid, self.interval = root_pid, interval
        self.peaks, self._stop = {}, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self):
        for pid in process_tree(self.root_pid):
            kib = vm_hwm_kib(pid)
            if kib is not None:
                self.peaks[pid] = max(kib, self.peaks.get(pid, 0))

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self):
        """Takes a last sample, stops polling; returns (peak MiB, number of processes)."""
        self.sample()
        self._stop.set()
        self._thread.join()
        return sum(self.peaks.values()) / 1024.0, len(self.peaks)


# ---------------------------------------------------------------- servers

class Server:
    """A started server: `target` (host:port), `protocol` (grpc|http), its command and log."""

    def __init__(self, name, proc, target, protocol, command, log_path):
        self.name, self.proc, self.target, self.protocol = name, proc, target, protocol
        self.command, self.log_path = command, log_path
        self.sampler = RssSampler(proc.pid)
        self.memory = None

    def stop(self):
        """Records the peak memory, then SIGTERM to the process group; SIGKILL after 30 s."""
        if self.memory is None:
            self.memory = self.sampler.stop()
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait()
        _signal_group(self.proc, signal.SIGKILL)  # leftovers (LitServe workers) of the group
        return self.memory


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)  # each server runs in its own session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def _wait_healthy(proc, target, log_path):
    from dinov3_client import EmbeddingClient, EmbeddingError
    deadline = time.monotonic() + STARTUP_SECONDS
    with EmbeddingClient(target, timeout=5.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"dinov3-server exited with {proc.returncode} before SERVING:\n"
                                 f"{tail(log_path)}")
            try:
                if client.health() == "SERVING":
                    return
            except EmbeddingError:
                pass
            time.sleep(0.2)
    raise BenchError(f"dinov3-server not SERVING after {STARTUP_SECONDS} s:\n{tail(log_path)}")


@contextlib.contextmanager
def start_ours(name, model, device, flags, log_path):
    """Our dinov3-server on a free loopback port, waited for until health says SERVING."""
    target = f"127.0.0.1:{free_port()}"
    command = [binary("dinov3-server"), f"--model={model}", f"--listen={target}",
               "--metrics_listen=127.0.0.1:0", "--http_listen=127.0.0.1:0",
               f"--device={device}", *flags]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(name, proc, target, "grpc", command, log_path)
    try:
        _wait_healthy(proc, target, log_path)
        yield server
    finally:
        server.stop()


def peer_command(kind, model, device, port, threads, max_batch_size):
    """The command line of a peer (tests/bench/peers); kind is python-grpc or litserve."""
    if kind == "python-grpc":
        return [PYTHON, os.path.join(PEERS_DIR, "python_grpc_server.py"), "--model", model,
                "--port", str(port), "--host", "127.0.0.1", "--device", device,
                "--workers", "8", "--threads", str(threads)]
    if kind == "litserve":
        return [PYTHON, os.path.join(PEERS_DIR, "litserve_server.py"), "--model", model,
                "--port", str(port), "--host", "127.0.0.1", "--device", device,
                "--max-batch-size", str(max_batch_size), "--batch-timeout", "0.005",
                "--threads", str(threads)]
    raise ValueError(f"unknown peer {kind!r}")


def _wait_ready_line(proc, log_path):
    """Reads the peer's stdout until `READY <port>`; returns the port."""
    deadline, buffered = time.monotonic() + STARTUP_SECONDS, b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            buffered += chunk
            match = re.search(rb"^READY (\d+)\s*$", buffered, re.M)
            if match:
                return int(match.group(1))
            if not chunk and proc.poll() is not None:
                break
        elif proc.poll() is not None:
            break
    raise BenchError(f"peer {' '.join(proc.args[:2])} never printed READY (exit "
                     f"{proc.poll()}):\n{buffered.decode(errors='replace')[-1000:]}\n"
                     f"{tail(log_path)}")


def _drain(stream, log_path):
    with open(log_path, "ab") as log:
        for line in iter(stream.readline, b""):
            log.write(line)


@contextlib.contextmanager
def start_peer(kind, model, device, threads, max_batch_size, log_path):
    """A peer server started in its own session (its workers die with it); waits for READY."""
    command = peer_command(kind, model, device, free_port(), threads, max_batch_size)
    log = open(log_path, "w")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=ROOT,
                            start_new_session=True)
    log.close()
    server = Server(kind, proc, None, "http" if kind == "litserve" else "grpc", command,
                    log_path)
    try:
        port = _wait_ready_line(proc, log_path)
        server.target = f"127.0.0.1:{port}"
        threading.Thread(target=_drain, args=(proc.stdout, log_path), daemon=True).start()
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- the C++ tools

@dataclasses.dataclass
class LoadShape:
    """What dinov3-bench sends and how long it measures each sweep point."""
    image_size: int = 224
    resize: int = 0                      # Preprocess height/width; 0 = the model's default
    outputs: tuple = ("cls", "pooled")
    dtype: str = "float32"
    images_per_request: int = 1
    concurrency: tuple = (1, 4, 16, 64)  # closed loop
    rates: tuple = ()                    # open loop (requests/s); when set, replaces concurrency
    warmup_seconds: float = 2
    window_seconds: float = 5
    stable_windows: int = 3
    stability: float = 0.10
    max_seconds: float = 60
    timeout_seconds: float = 120
    http_path: str = "/predict"

    def flags(self, protocol, method):
        """dinov3-bench flags for this shape (method is ignored over HTTP)."""
        sweep = (f"--rate={','.join(f'{r:g}' for r in self.rates)}" if self.rates else
                 f"--concurrency={','.join(map(str, self.concurrency))}")
        flags = [sweep, f"--image_size={self.image_size}x{self.image_size}",
                 f"--images_per_request={self.images_per_request}",
                 f"--outputs={','.join(self.outputs)}", f"--dtype={self.dtype}",
                 f"--warmup_seconds={self.warmup_seconds:g}",
                 f"--window_seconds={self.window_seconds:g}",
                 f"--stable_windows={self.stable_windows}", f"--stability={self.stability:g}",
                 f"--max_seconds={self.max_seconds:g}",
                 f"--timeout_seconds={self.timeout_seconds:g}"]
        if self.resize:
            flags.append(f"--resize={self.resize}x{self.resize}")
        if protocol == "http":
            flags.append(f"--http_path={self.http_path}")
        else:
            flags.append(f"--method={method}")
        return flags


def run_load(target, protocol, method, shape, json_path, progress=True):
    """One dinov3-bench sweep (closed loop over shape.concurrency, or open loop over
    shape.rates); returns its parsed JSON. Raises BenchError when it could not run."""
    command = [binary("dinov3-bench"), f"--target={target}", f"--protocol={protocol}",
               *shape.flags(protocol, method), f"--json={json_path}",
               f"--progress={str(progress).lower()}"]
    points = len(shape.rates or shape.concurrency)
    budget = points * (shape.warmup_seconds + shape.max_seconds + shape.timeout_seconds) + 60
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=None, text=True,
                          timeout=budget)
    if proc.returncode != 0:
        raise BenchError(f"dinov3-bench exited with {proc.returncode}: {' '.join(command)}\n"
                         f"{proc.stdout[-2000:]}")
    with open(json_path) as f:
        result = json.load(f)
    result["command"] = command
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
    return result


def _google_benchmark(command, json_path, timeout):
    command = [*command, "--benchmark_format=json", f"--benchmark_out={json_path}",
               "--benchmark_out_format=json"]
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(f"{os.path.basename(command[0])} exited with {proc.returncode}: "
                         f"{' '.join(command)}\n{proc.stderr[-2000:]}")
    with open(json_path) as f:
        return json.load(f)


def run_ceiling(model, device, threads, batches, image_size, min_time, json_path,
                warmup_batch=0, gemm_dtypes=()):
    """dinov3-model-bench: the bare TorchScript forward at each batch size, run as the server
    runs it (warmed up like a server with max_batch_size warmup_batch), and the GEMM rate in
    gemm_dtypes on the same threads; its JSON."""
    command = [binary("dinov3-model-bench"), f"--model={model}", f"--device={device}",
               f"--threads={threads}", f"--batches={','.join(map(str, batches))}",
               f"--image_size={image_size}", f"--benchmark_min_time={min_time:g}"]
    if warmup_batch:
        command.append(f"--warmup_batch={warmup_batch}")
    if gemm_dtypes:
        command.append(f"--gemm={','.join(gemm_dtypes)}")
    return _google_benchmark(command, json_path, timeout=3600)


def run_hf(model, mode, threads, batches, image_size, min_time, json_path, timeout=3600):
    """tests/bench/hf_forward.py: transformers' DINOv3ViTModel with the weights of `model`,
    eager or torch.compile'd; its JSON. A failure of the model or of torch.compile is in the
    JSON's "error" (and reported in the row); a crash or a timeout becomes such an error too."""
    command = [PYTHON, os.path.join(ROOT, "tests", "bench", "hf_forward.py"), "--model", model,
               "--mode", mode, "--threads", str(threads),
               "--batches", ",".join(map(str, batches)), "--image-size", str(image_size),
               "--min-time", f"{min_time:g}", "--json", json_path]
    if os.path.exists(json_path):
        os.remove(json_path)  # never a stale result of an earlier run
    try:
        proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=timeout, cwd=ROOT)
        failed = proc.returncode != 0 and f"exit status {proc.returncode}: " + \
            " | ".join(proc.stderr.strip().splitlines()[-3:])[-600:]
    except subprocess.TimeoutExpired:
        failed = f"still running after {timeout} s"
    if failed or not os.path.exists(json_path):
        result = {"mode": mode, "batches": {}, "error": failed or "wrote no JSON"}
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    with open(json_path) as f:
        result = json.load(f)
    result["command"] = command
    return result


def run_serialization(json_path, min_time=None):
    """dinov3-serialization-bench (encode/serialize/parse/decode of dense responses)."""
    command = [binary("dinov3-serialization-bench")]
    if min_time:
        command.append(f"--benchmark_min_time={min_time:g}")
    return _google_benchmark(command, json_path, timeout=1800)


# ---------------------------------------------------------------- parity of the peers

def parity_image(size):
    """The deterministic photo-like RGB8 image (size x size) that the parity check sends."""
    from tests.integration.python.synthetic_images import photo_like
    return photo_like(size, size, seed=7)


def cls_over_grpc(target, image, size):
    """(CLS float32 [D], patch-token count) from Embed on a gRPC server at size x size."""
    from dinov3_client import EmbeddingClient
    with EmbeddingClient(target, timeout=300.0) as client:
        [result] = client.embed([image], outputs=("cls", "patch_tokens"), dtype="float32",
                                preprocess={"height": size, "width": size})
    return np.asarray(result.cls, np.float32), int(result.patch_tokens.shape[0])


def cls_over_http(target, image, size, path="/predict"):
    """(CLS float32 [D], patch-token count) from the LitServe peer (its JSON protocol:
    tests/bench/peers/litserve_server.py)."""
    body = {"image": base64.b64encode(image.tobytes()).decode("ascii"), "encoding": "raw",
            "width": image.shape[1], "height": image.shape[0], "dtype": "float32",
            "outputs": ["cls", "patch_tokens"], "resize": [size, size]}
    request = urllib.request.Request(f"http://{target}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        answer = json.loads(response.read())
    cls, patches = answer["cls"], answer["patch_tokens"]
    return (np.frombuffer(base64.b64decode(cls["data"]), "<f4"), int(patches["shape"][0]))


def cosine(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def check_parity(reference, server, size, minimum=0.999):
    """Cosine of the peer's CLS to ours (float32) for one image; BenchError below minimum or
    when the patch grid differs (the peer would be doing different work)."""
    image = parity_image(size)
    fetch = cls_over_http if server.protocol == "http" else cls_over_grpc
    cls, patches = fetch(server.target, image, size)
    ref_cls, ref_patches = reference
    value = cosine(cls, ref_cls)
    if not value >= minimum or patches != ref_patches:
        raise BenchError(f"PARITY FAILURE: {server.name} disagrees with dinov3-server at "
                         f"{size}x{size}: CLS cosine {value:.6f} (need >= {minimum}), "
                         f"{patches} patch tokens (ours {ref_patches}); not measuring it")
    return value
