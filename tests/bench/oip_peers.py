"""dinov3-server against Seldon MLServer (tests/bench/peers/mlserver_server.py) on the same
protocol, the Open Inference Protocol (KServe v2), in one run on one machine.

Both serve the same export (random full-depth vits16, float32, CPU) at the same time, each with
the same torch intra-op threads (--threads, default: the machine's cores; our server
--intra_op_threads, MLServer's inference worker torch.set_num_threads) and the same batching
bound (8: our server's default max_batch_size; MLServer's adaptive batching max_batch_size 8,
max_batch_time 5 ms, as the LitServe peer's). Images: the 640x480 JPEGs of front_doors.py (real
photographs of /usr/share/backgrounds, or generated ones where missing), one per request, sent
in turn; both resize to the model's 224x224; outputs CLS and POOLED in FP32.

Rows (each a closed loop at each --concurrency):
  ours      native-grpc    dinov3-bench --protocol=grpc      (dinov3.v1 Embed; the reference)
  ours      oip-grpc       dinov3-bench --protocol=oip-grpc  (ModelInfer, IMAGE BYTES raw contents)
  mlserver  oip-grpc       dinov3-bench --protocol=oip-grpc
  ours      oip-rest       dinov3-bench --protocol=oip-rest  (binary tensor extension)
  ours      oip-rest-json  Python tritonclient.http, JSON (IMAGE a base64 string, FP32 as numbers)
  mlserver  oip-rest-json  the same Python client
MLServer's REST API has no binary tensor extension (dinov3-bench's oip-rest is binary only), so
the REST comparison of the two servers is the JSON one, with the same Python load generator on
both; that client's own CPU (measured) shares the cores with the server, equally for both.

Each cell: --warmup seconds unmeasured, then one --seconds window (dinov3-bench:
--stable_windows=1 --window_seconds=--max_seconds=--seconds). --rounds rounds; in each round every
(concurrency, row) cell once, the rows in an order rotated by one per round so that drift and
other load hit both servers. Before each cell the script waits (at most --quiet_wait s) for a
second in which processes other than the two servers take under 0.25 cores (the machine is
shared; the compilers of other work are the usual load), and records per cell: images/s, p50
and p99 latency, and over the measurement window (CPU times sampled at its edges) the server's
CPU per image (its whole process tree: MLServer's main process and inference worker), the load
generator's CPU per image (dinov3-bench's process, or this Python process for the JSON rows),
the other processes' CPU (cores) and /proc/loadavg. Reported per row: medians over rounds and
the median per-round ratio of images/s to ours over native gRPC at the same concurrency.
Start-up check: both servers answer image 0's CLS over OIP gRPC with cosine >= 0.999 to each
other (JPEG decoders may differ: the server's own, PIL in the peer).

On a shared machine, --max_other_cores X summarises only the cells in which other processes
took at most X cores (every cell stays in --json; --summarise JSON re-summarises an earlier run
with another X without measuring). --server / --bench take copies of the binaries, so that a
rebuild during the run cannot swap them.

    tests/bench/peers/setup_mlserver.sh      # once: .venv-mlserver
    .venv/bin/python tests/bench/oip_peers.py [--json out.json]    # 2 rounds x 15 s per cell
    .venv/bin/python tests/bench/oip_peers.py --quick                # smoke, ~2 min
    .venv/bin/python tests/bench/oip_peers.py --summarise out.json --max_other_cores 0.3
"""
import argparse
import base64
import datetime
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.bench.front_doors import cpu_model, make_images  # noqa: E402
from tests.integration.python.server_process import (BIN_DIR, SERVER,  # noqa: E402
                                                      export_random_model, http_port,
                                                      start_server, stop_server)

MLSERVER_PYTHON = os.path.join(ROOT, ".venv-mlserver", "bin", "python")
MLSERVER_PEER = os.path.join(ROOT, "tests", "bench", "peers", "mlserver_server.py")
BENCH = os.path.join(BIN_DIR, "dinov3-bench")
CALL_SECONDS = 300  # hang guard of one call, not a duration
ROWS = [("ours", "native-grpc"), ("ours", "oip-grpc"), ("mlserver", "oip-grpc"),
        ("ours", "oip-rest"), ("ours", "oip-rest-json"), ("mlserver", "oip-rest-json")]
BASELINE = ("ours", "native-grpc")
BENCH_PROTOCOL = {"native-grpc": "grpc", "oip-grpc": "oip-grpc", "oip-rest": "oip-rest",
                  "openai": "openai"}


# ---------------------------------------------------------------------------- CPU accounting

def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def tree_pids(root):
    """`root` and its descendants (a scan of /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(entry)[1]), []).append(int(entry))
            except (OSError, IndexError):
                pass
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def tree_cpu_seconds(root):
    """CPU seconds (user + system) of `root` and its live descendants."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds():
    """CPU seconds the whole machine spent busy (all cores, everything but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def compilers_running():
    try:
        return int(subprocess.run(["pgrep", "-c", "cc1plus"], capture_output=True,
                                  text=True).stdout.strip() or 0)
    except OSError:
        return 0


def wait_for_quiet(server_pids, limit_seconds, threshold=0.25):
    """Waits (at most `limit_seconds`) for a second in which processes other than the servers
    and this one take under `threshold` cores; returns the seconds waited."""
    began = time.perf_counter()
    while True:
        m0, s0, o0 = (machine_cpu_seconds(), sum(map(tree_cpu_seconds, server_pids)),
                      time.process_time())
        time.sleep(1.0)
        other = ((machine_cpu_seconds() - m0) - (sum(map(tree_cpu_seconds, server_pids)) - s0)
                 - (time.process_time() - o0))
        waited = time.perf_counter() - began
        if other < threshold or waited >= limit_seconds:
            return waited


class CpuWindow:
    """CPU taken over a measurement window by the server under test (its process tree), the
    load generator (the process tree of `tool_pid`, or this Python process when None), the
    other, idle server and everything else; start() and stop() at the window's edges."""

    def __init__(self, server_pid, other_server_pids=(), tool_pid=None):
        self.server_pid, self.others, self.tool_pid = server_pid, list(other_server_pids), tool_pid

    def _tool(self):
        return tree_cpu_seconds(self.tool_pid) if self.tool_pid else time.process_time()

    def start(self):
        self.t0 = time.perf_counter()
        self.server0 = tree_cpu_seconds(self.server_pid)
        self.idle0 = sum(map(tree_cpu_seconds, self.others))
        self.tool0, self.machine0 = self._tool(), machine_cpu_seconds()
        self.load_before = loadavg()

    def stop(self):
        self.seconds = time.perf_counter() - self.t0
        self.server = tree_cpu_seconds(self.server_pid) - self.server0
        self.idle_servers = sum(map(tree_cpu_seconds, self.others)) - self.idle0
        self.client = self._tool() - self.tool0
        machine = machine_cpu_seconds() - self.machine0
        self.other_cores = max(0.0, machine - self.server - self.idle_servers
                               - self.client) / self.seconds
        self.load_after = loadavg()

    def fields(self, rate):
        """Per-image CPU at `rate` images/s over the window (the tool's own count)."""
        images = rate * self.seconds
        per = (lambda cpu: 1000 * cpu / images) if images else (lambda cpu: None)
        return {"server_cpu_ms_per_image": per(self.server),
                "client_cpu_ms_per_image": per(self.client),
                "client_cpu_cores": self.client / self.seconds,
                "server_cpu_cores": self.server / self.seconds,
                "idle_server_cpu_cores": self.idle_servers / self.seconds,
                "other_cpu_cores": self.other_cores,
                "loadavg_before": self.load_before, "loadavg_after": self.load_after}


# ---------------------------------------------------------------------------- load generators

def set_bench(path):
    """Uses the dinov3-bench binary at `path` (e.g. a copy that a rebuild cannot replace)."""
    global BENCH
    BENCH = path


def run_sampled(command, warmup, seconds, cpu_args, log_path, timeout):
    """Runs a load generator whose measurement window is [warmup, warmup + seconds] after its
    start; samples CPU (CpuWindow(*cpu_args, tool_pid=its pid)) over about that window.
    Returns (exit status, the CpuWindow)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    cpu = CpuWindow(*cpu_args, tool_pid=proc.pid)
    try:
        began = time.perf_counter()
        time.sleep(warmup)
        cpu.start()
        time.sleep(max(0.0, began + warmup + seconds - time.perf_counter()))
        cpu.stop()
        return proc.wait(timeout=timeout), cpu
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def run_dinov3_bench(protocol, target, model, image_files, concurrency, warmup, seconds,
                     json_path, cpu_args, extra=()):
    """One closed-loop point of dinov3-bench; returns (its point dict, the command, the
    CpuWindow)."""
    command = [BENCH, f"--target={target}", f"--protocol={protocol}", f"--model={model}",
               f"--images={','.join(image_files)}", f"--concurrency={concurrency}",
               f"--warmup_seconds={warmup:g}", f"--window_seconds={seconds:g}",
               f"--max_seconds={seconds:g}", "--stable_windows=1", "--min_window_calls=1",
               "--progress=false", f"--json={json_path}", *extra]
    log = json_path + ".log"
    status, cpu = run_sampled(command, warmup, seconds, cpu_args, log,
                              timeout=seconds + CALL_SECONDS)
    if status != 0:
        with open(log) as f:
            raise RuntimeError(f"dinov3-bench exited with {status}: {' '.join(command)}\n"
                               f"{f.read()[-2000:]}")
    with open(json_path) as f:
        [point] = json.load(f)["points"]
    return point, command, cpu


def bench_cell(protocol, target, model, image_files, concurrency, warmup, seconds, json_path,
               cpu_args, extra=()):
    """A dinov3-bench cell with the CPU of its measurement window."""
    point, command, cpu = run_dinov3_bench(protocol, target, model, image_files, concurrency,
                                           warmup, seconds, json_path, cpu_args, extra)
    return {"images_per_second": point["images_per_second"],
            "p50_ms": point["latency_ms"]["p50"], "p99_ms": point["latency_ms"]["p99"],
            "images": point["images"], "errors": sum(point["errors"].values()),
            "stable": point["stable"], "command": " ".join(command),
            **cpu.fields(point["images_per_second"])}


def python_rest_json_cell(http_target, model, jpegs, concurrency, warmup, seconds, cpu_args):
    """Closed loop of `concurrency` threads, each with its own tritonclient.http client, all
    JSON: IMAGE as a base64 string, CLS and POOLED as JSON numbers."""
    import tritonclient.http as triton

    b64 = [base64.b64encode(j).decode() for j in jpegs]
    ready = threading.Barrier(concurrency + 1)
    start_at = [0.0]
    latencies = [[] for _ in range(concurrency)]
    errors = []

    def worker(index):
        client = triton.InferenceServerClient(http_target, connection_timeout=CALL_SECONDS,
                                              network_timeout=CALL_SECONDS)
        outputs = [triton.InferRequestedOutput(n, binary_data=False) for n in ("CLS", "POOLED")]
        try:
            ready.wait()
            window_start, i = start_at[0] + warmup, index
            window_end = window_start + seconds
            while time.perf_counter() < window_end:
                tensor = triton.InferInput("IMAGE", [1], "BYTES")
                tensor.set_data_from_numpy(np.array([b64[i % len(b64)]], dtype=np.object_),
                                           binary_data=False)
                t0 = time.perf_counter()
                result = client.infer(model, [tensor], outputs=outputs)
                t1 = time.perf_counter()
                for output in ("CLS", "POOLED"):
                    shape = result.as_numpy(output).shape
                    if len(shape) != 2 or shape[0] != 1:
                        raise RuntimeError(f"{output}: shape {shape}, expected [1, D]")
                if window_start <= t1 <= window_end:
                    latencies[index].append(t1 - t0)
                i += 1
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu = CpuWindow(*cpu_args)  # this process: the client threads
    start_at[0] = time.perf_counter()
    try:
        ready.wait(timeout=CALL_SECONDS)
    except threading.BrokenBarrierError:
        pass
    time.sleep(max(0.0, start_at[0] + warmup - time.perf_counter()))
    cpu.start()
    time.sleep(max(0.0, start_at[0] + warmup + seconds - time.perf_counter()))
    cpu.stop()
    for thread in threads:
        thread.join(timeout=CALL_SECONDS)
    if errors:
        raise RuntimeError(f"oip-rest-json: {errors[0]!r}") from errors[0]
    done = sorted(x for per_thread in latencies for x in per_thread)
    return {"images_per_second": len(done) / seconds,
            "p50_ms": 1000 * statistics.median(done) if done else None,
            "p99_ms": 1000 * done[int(0.99 * (len(done) - 1))] if done else None,
            "images": len(done), "errors": 0, "stable": None,
            "command": "tritonclient.http JSON, threads", **cpu.fields(len(done) / seconds)}


# ---------------------------------------------------------------------------- servers

def start_mlserver(model, log_path, threads, max_batch_size, max_batch_time, timeout=300):
    """Starts the MLServer peer in its own session; returns (process, http_port, grpc_port)."""
    if not os.access(MLSERVER_PYTHON, os.X_OK):
        sys.exit("no .venv-mlserver: run tests/bench/peers/setup_mlserver.sh first")
    log = open(log_path, "w")
    proc = subprocess.Popen([MLSERVER_PYTHON, MLSERVER_PEER, "--model", model,
                             "--threads", str(threads), "--max_batch_size", str(max_batch_size),
                             "--max_batch_time", str(max_batch_time)],
                            stdout=subprocess.PIPE, stderr=log, text=True,
                            start_new_session=True, cwd=ROOT)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                _, http, grpc_port = line.split()
                return proc, int(http), int(grpc_port)
            if not line and proc.poll() is not None:
                break
    stop_mlserver(proc)
    with open(log_path) as f:
        sys.exit(f"the MLServer peer did not start:\n{f.read()[-3000:]}")


def stop_mlserver(proc, grace=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything of its session still there
    except ProcessLookupError:
        pass
    proc.wait()


def oip_grpc_cls(target, model, jpeg):
    import tritonclient.grpc as triton
    client = triton.InferenceServerClient(target)
    try:
        tensor = triton.InferInput("IMAGE", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([jpeg], dtype=np.object_))
        result = client.infer(model, [tensor], outputs=[triton.InferRequestedOutput("CLS")],
                              client_timeout=CALL_SECONDS)
        return np.asarray(result.as_numpy("CLS")[0], np.float64)
    finally:
        client.close()


# ---------------------------------------------------------------------------- report

def summarise(cells, rows, concurrencies, max_other_cores=None):
    """Per row: medians over rounds, and the median per-round ratio to the baseline. With
    `max_other_cores`, cells in which other processes took more are left out (a per-round
    ratio needs both its cells kept)."""
    out = []
    for c in concurrencies:
        by_round = {}
        for cell in cells:
            if max_other_cores is not None and cell["other_cpu_cores"] > max_other_cores:
                continue
            if cell["concurrency"] == c:
                by_round.setdefault(cell["round"], {})[(cell["server"], cell["transport"])] = cell
        for row in rows:
            mine = [r[row] for r in by_round.values() if row in r]
            ratios = [r[row]["images_per_second"] / r[BASELINE]["images_per_second"]
                      for r in by_round.values()
                      if row in r and BASELINE in r and r[BASELINE]["images_per_second"] > 0]

            def median(key):
                values = [m[key] for m in mine if m.get(key) is not None]
                return statistics.median(values) if values else None
            out.append({"concurrency": c, "server": row[0], "transport": row[1],
                        **{k: median(k) for k in ("images_per_second", "p50_ms", "p99_ms",
                                                  "server_cpu_ms_per_image",
                                                  "client_cpu_ms_per_image", "other_cpu_cores")},
                        "ratio_to_native": statistics.median(ratios) if ratios else None,
                        "ratios": ratios, "errors": sum(m["errors"] for m in mine),
                        "cells": len(mine),
                        "images_per_second_per_round": [m["images_per_second"] for m in mine]})
    return out


def table(rows):
    def f(value, fmt):
        return "n/a" if value is None else format(value, fmt)
    lines = ["| concurrency | server | transport | load generator | images/s "
             "| / ours native gRPC (per round) | p50 ms | p99 ms | server CPU ms/image "
             "| load generator CPU ms/image | other CPU (cores) | cells | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratios = ", ".join(format(r, ".2f") for r in row["ratios"])
        generator = "Python tritonclient" if row["transport"] == "oip-rest-json" else "dinov3-bench"
        lines.append(f"| {row['concurrency']} | {row['server']} | {row['transport']} "
                     f"| {generator} | {f(row['images_per_second'], '.2f')} "
                     f"| {f(row['ratio_to_native'], '.2f')} ({ratios}) "
                     f"| {f(row['p50_ms'], '.0f')} | {f(row['p99_ms'], '.0f')} "
                     f"| {f(row['server_cpu_ms_per_image'], '.0f')} "
                     f"| {f(row['client_cpu_ms_per_image'], '.1f')} "
                     f"| {f(row['other_cpu_cores'], '.2f')} | {row['cells']} "
                     f"| {row['errors']} |")
    return "\n".join(lines)


def write_images(directory, count):
    jpegs, note = make_images(count)
    files = []
    for i, jpeg in enumerate(jpegs):
        path = os.path.join(directory, f"image{i:02d}.jpg")
        with open(path, "wb") as f:
            f.write(jpeg)
        files.append(path)
    return jpegs, files, note


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16", help="comma-separated (default 1,16)")
    parser.add_argument("--seconds", type=float, default=15, help="measured window per cell")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured start of each cell")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=8, help="distinct images sent in turn")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads of both servers (0 = the machine's cores)")
    parser.add_argument("--max_batch_size", type=int, default=8)
    parser.add_argument("--max_batch_time", type=float, default=0.005,
                        help="MLServer's adaptive batching wait, seconds")
    parser.add_argument("--rows", default=",".join(f"{s}:{t}" for s, t in ROWS),
                        help="server:transport pairs (default: all six)")
    parser.add_argument("--quiet_wait", type=float, default=30,
                        help="before each cell, wait at most this long for a second in which "
                             "other processes take < 0.25 cores (the machine is shared)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round, 4 s windows after 1 s of warm-up")
    parser.add_argument("--max_other_cores", type=float, default=None,
                        help="summarise only the cells in which other processes took at most "
                             "this many cores (all cells stay in --json)")
    parser.add_argument("--summarise", metavar="JSON",
                        help="measure nothing: re-summarise the cells of an earlier --json")
    parser.add_argument("--json", help="write the raw cells and the summary here")
    parser.add_argument("--server", default=SERVER, help="dinov3-server binary")
    parser.add_argument("--bench", default=BENCH, help="dinov3-bench binary")
    args = parser.parse_args()
    if args.summarise:
        with open(args.summarise) as f:
            earlier = json.load(f)
        cells, meta = earlier["cells"], earlier["meta"]
        rows = list(dict.fromkeys((c["server"], c["transport"]) for c in cells))
        concurrencies = list(dict.fromkeys(c["concurrency"] for c in cells))
        print(f"{meta['cpu']}, {meta['cores']} cores, {meta['date_utc']} UTC; "
              f"{meta['command']}; cells with other processes at most "
              f"{args.max_other_cores} cores\n")
        print(table(summarise(cells, rows, concurrencies, args.max_other_cores)))
        return
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.quiet_wait = 1, 4, 1, 2
    threads = args.threads or os.cpu_count()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    rows = [tuple(r.split(":")) for r in args.rows.split(",")]
    if BASELINE not in rows or any(r not in ROWS for r in rows):
        sys.exit(f"--rows: pairs of {ROWS}, {BASELINE} included")
    set_bench(args.bench)
    for tool in (args.server, args.bench):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} is missing: build it first (scripts/build.sh)")
    began = time.time()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        jpegs, image_files, image_note = write_images(tmp, args.images)
        model = export_random_model(tmp, seed=1, depth=12, name="vits16.pt")
        name = "vits16"
        ours_log, peer_log = os.path.join(tmp, "server.log"), os.path.join(tmp, "mlserver.log")
        proc, target, client = start_server(
            model, ours_log, f"--intra_op_threads={threads}",
            f"--max_batch_size={args.max_batch_size}", server=args.server)
        peer = None
        try:
            peer, peer_http, peer_grpc = start_mlserver(model, peer_log, threads,
                                                        args.max_batch_size,
                                                        args.max_batch_time)
            servers = {"ours": {"pid": proc.pid, "grpc": target,
                                "http": f"127.0.0.1:{http_port(ours_log)}"},
                       "mlserver": {"pid": peer.pid, "grpc": f"127.0.0.1:{peer_grpc}",
                                    "http": f"127.0.0.1:{peer_http}"}}
            a = oip_grpc_cls(servers["ours"]["grpc"], name, jpegs[0])
            b = oip_grpc_cls(servers["mlserver"]["grpc"], name, jpegs[0])
            cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
            print(f"CLS of image 0, ours vs MLServer: cosine {cosine:.6f}", flush=True)
            if cosine < 0.999:
                sys.exit(f"the servers disagree on image 0: cosine {cosine}")
            pids = [proc.pid, peer.pid]
            for r in range(args.rounds):
                order = rows[r % len(rows):] + rows[:r % len(rows)]
                for c in concurrencies:
                    for server_name, transport in order:
                        s = servers[server_name]
                        waited = wait_for_quiet(pids, args.quiet_wait)
                        cpu_args = (s["pid"], [p for p in pids if p != s["pid"]])
                        compilers = compilers_running()
                        if transport == "oip-rest-json":
                            cell = python_rest_json_cell(s["http"], name, jpegs, c, args.warmup,
                                                         args.seconds, cpu_args)
                        else:
                            endpoint = s["http"] if transport == "oip-rest" else s["grpc"]
                            cell = bench_cell(BENCH_PROTOCOL[transport], endpoint, name,
                                              image_files, c, args.warmup, args.seconds,
                                              os.path.join(tmp, "bench.json"), cpu_args)
                        cell.update(round=r, concurrency=c, server=server_name,
                                    transport=transport, waited_for_quiet_seconds=round(waited, 1),
                                    compilers_at_start=compilers)
                        cells.append(cell)
                        print(f"round {r + 1}/{args.rounds} c={c:<3} {server_name:<8} "
                              f"{transport:<14} {cell['images_per_second']:6.2f} img/s  "
                              f"p50 {cell['p50_ms'] or 0:7.1f} ms  server CPU "
                              f"{cell['server_cpu_ms_per_image'] or 0:6.1f} ms/img  client CPU "
                              f"{cell['client_cpu_ms_per_image'] or 0:5.1f} ms/img  others "
                              f"{cell['other_cpu_cores']:.2f} cores  load {cell['loadavg_after']}"
                              f"  errors {cell['errors']}", flush=True)
        finally:
            if peer is not None:
                stop_mlserver(peer)
            stop_server(proc, client)
    summary = summarise(cells, rows, concurrencies, args.max_other_cores)
    meta = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads,
            "command": " ".join(sys.argv), "images": image_note, "rounds": args.rounds,
            "seconds": args.seconds, "warmup": args.warmup, "cosine_image0": cosine,
            "run_minutes": round((time.time() - began) / 60, 1)}
    print(f"\n{meta['cpu']}, {meta['cores']} cores, {threads} intra-op threads each, "
          f"{meta['date_utc']} UTC, {meta['run_minutes']} min; {image_note}")
    print(f"{args.rounds} round(s) x {args.seconds:g} s per cell after {args.warmup:g} s "
          "warm-up; medians over rounds\n")
    print(table(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "summary": summary, "cells": cells}, f, indent=1)


if __name__ == "__main__":
    main()
