"""Front doors against each other: native dinov3.v1 gRPC, the Open Inference Protocol (KServe v2)
over gRPC and REST, and OpenAI /v1/embeddings, in one run against one server process.

One dinov3-server (random full-depth vits16 export, CPU, float32, default batching, default 224
resize) and one set of images: 640x480 JPEGs (quality 90) made from real photographs of
/usr/share/backgrounds (the wallpapers scripts/setup.sh installs: center crop to 4:3, Lanczos),
or, where they are missing, generated smooth 640x480 JPEGs (the output says which). Transports,
one image per request, the CLS embedding in float32, decoded to numpy by the client:

  native-grpc       dinov3_client.EmbeddingClient.embed(outputs=("cls",), dtype="float32")
  oip-grpc          tritonclient.grpc ModelInfer, IMAGE (BYTES) in, CLS (FP32) out
  oip-rest-binary   tritonclient.http, binary tensor extension both ways (its default)
  oip-rest-json     tritonclient.http, all JSON: IMAGE as a base64 string, CLS as JSON numbers
  openai-float      openai package, /v1/embeddings, data URL in, encoding_format="float"
  openai-base64     openai package, /v1/embeddings, data URL in, encoding_format="base64"

(OpenAI's answer is the L2-normalised CLS, its default; the others the raw CLS.) Every client
keeps its connection(s); the gRPC clients get their own subchannel pool, so each caller has its
own TCP connection as the HTTP ones do.

Closed loop at each --concurrency (threads, each with its own client), --seconds per cell after
--warmup seconds; --rounds rounds, each round every (concurrency, transport) cell once, the
transports in an order rotated by one per round. Per cell: images/s, client-side p50 latency,
client CPU time per request (this process's CPU time over the window / requests completed in it:
the Python client's own cost, which shares the machine's cores with the server), the server
process's CPU time per request, and the cores' worth of CPU other processes took meanwhile (the
machine is shared: before each cell the script waits, at most --quiet_wait seconds, for a second
in which they take under 0.25 cores). Reported per transport: the median over rounds, and the median
of the per-round ratio of images/s to native-grpc's in the same round.

  .venv/bin/python tests/bench/front_doors.py [--json out.json]           # 3 x 20 s per cell
  .venv/bin/python tests/bench/front_doors.py --quick                     # smoke, ~1.5 min
"""
import argparse
import base64
import datetime
import glob
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.server_process import (SERVER, export_random_model,  # noqa: E402
                                                      http_port, start_server, stop_server)
from dinov3_client import EmbeddingClient  # noqa: E402

WIDTH, HEIGHT = 640, 480
CALL_SECONDS = 300  # hang guard of one call, not a duration
GRPC_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
MAX_MESSAGE = 64 * 1024 * 1024
TRANSPORTS = ["native-grpc", "oip-grpc", "oip-rest-binary", "oip-rest-json", "openai-float",
              "openai-base64"]
BASELINE = "native-grpc"


# ---------------------------------------------------------------------------- images

def make_images(count):
    """(list of JPEG bytes, description)."""
    photos = sorted(glob.glob("/usr/share/backgrounds/*.jpg"))[:count]
    images = []
    if len(photos) == count:
        for path in photos:
            with Image.open(path) as photo:
                photo = photo.convert("RGB")
                w, h = photo.size
                cw, ch = (w, w * 3 // 4) if w * 3 <= h * 4 else (h * 4 // 3, h)
                box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
                small = photo.resize((WIDTH, HEIGHT), Image.LANCZOS, box=box)
            out = io.BytesIO()
            small.save(out, "JPEG", quality=90)
            images.append(out.getvalue())
        names = ", ".join(os.path.basename(p) for p in photos)
        return images, f"{count} 640x480 JPEGs (q90) from /usr/share/backgrounds: {names}"
    rng = np.random.default_rng(0)
    for _ in range(count):
        coarse = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        smooth = Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.BICUBIC)
        noisy = np.clip(np.asarray(smooth, np.int16) + rng.integers(-12, 13, (HEIGHT, WIDTH, 3)),
                        0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(noisy).save(out, "JPEG", quality=90)
        images.append(out.getvalue())
    return images, f"{count} generated 640x480 JPEGs (q90; no photos in /usr/share/backgrounds)"


# ---------------------------------------------------------------------------- transports
# make(server) -> (call(jpeg) -> float32 CLS vector, close()); made in the caller's thread.

def native_grpc(server):
    client = EmbeddingClient(server["target"], timeout=CALL_SECONDS, options=GRPC_OPTIONS)

    def call(jpeg):
        return client.embed([jpeg], outputs=("cls",), dtype="float32")[0].cls
    return call, client.close


def oip_grpc(server):
    import tritonclient.grpc as triton
    client = triton.InferenceServerClient(
        server["target"], channel_args=[("grpc.max_send_message_length", MAX_MESSAGE),
                                        ("grpc.max_receive_message_length", MAX_MESSAGE),
                                        *GRPC_OPTIONS])
    outputs = [triton.InferRequestedOutput("CLS")]

    def call(jpeg):
        tensor = triton.InferInput("IMAGE", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([jpeg], dtype=np.object_))
        result = client.infer(server["name"], [tensor], outputs=outputs,
                              client_timeout=CALL_SECONDS)
        return result.as_numpy("CLS")[0]
    return call, client.close


def oip_rest(binary):
    def make(server):
        import tritonclient.http as triton
        client = triton.InferenceServerClient(f"127.0.0.1:{server['http_port']}",
                                              connection_timeout=CALL_SECONDS,
                                              network_timeout=CALL_SECONDS)
        outputs = [triton.InferRequestedOutput("CLS", binary_data=binary)]

        def call(jpeg):
            tensor = triton.InferInput("IMAGE", [1], "BYTES")
            data = jpeg if binary else base64.b64encode(jpeg).decode()
            tensor.set_data_from_numpy(np.array([data], dtype=np.object_), binary_data=binary)
            result = client.infer(server["name"], [tensor], outputs=outputs)
            return result.as_numpy("CLS")[0]
        return call, client.close
    return make


def openai_embeddings(encoding_format):
    def make(server):
        import openai
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server['http_port']}/v1",
                               api_key="unused", max_retries=0, timeout=CALL_SECONDS)

        def call(jpeg):
            url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
            response = client.embeddings.create(model=server["name"], input=[url],
                                                encoding_format=encoding_format)
            embedding = response.data[0].embedding
            if isinstance(embedding, str):
                return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
            return np.asarray(embedding, dtype=np.float64).astype(np.float32)
        return call, client.close
    return make


MAKERS = {"native-grpc": native_grpc, "oip-grpc": oip_grpc,
          "oip-rest-binary": oip_rest(True), "oip-rest-json": oip_rest(False),
          "openai-float": openai_embeddings("float"),
          "openai-base64": openai_embeddings("base64")}


# ---------------------------------------------------------------------------- measurement

def server_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_cpu_seconds():
    """CPU seconds the whole machine spent busy (all cores, everything but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(pid, limit_seconds, threshold=0.25):
    """Waits (at most `limit_seconds`) for a second in which processes other than the server
    and this one take under `threshold` cores; returns the seconds waited."""
    began = time.perf_counter()
    while True:
        machine0, server0 = machine_cpu_seconds(), server_cpu_seconds(pid)
        own0 = time.process_time()
        time.sleep(1.0)
        other = ((machine_cpu_seconds() - machine0) - (server_cpu_seconds(pid) - server0)
                 - (time.process_time() - own0))
        waited = time.perf_counter() - began
        if other < threshold or waited >= limit_seconds:
            return waited


def check_agreement(server, images):
    """Every transport answers image 0 with the native CLS (L2-normalised for comparison)."""
    vectors = {}
    for name in TRANSPORTS:
        call, close = MAKERS[name](server)
        try:
            vectors[name] = np.asarray(call(images[0]), dtype=np.float64)
        finally:
            close()
    ref = vectors[BASELINE] / np.linalg.norm(vectors[BASELINE])
    for name, vector in vectors.items():
        cosine = float(vector @ ref / np.linalg.norm(vector))
        if vector.shape != ref.shape or cosine < 0.9999:
            sys.exit(f"{name} disagrees with {BASELINE}: shape {vector.shape}, cosine {cosine}")


def run_cell(server, name, concurrency, images, warmup, seconds):
    """One closed-loop cell: `concurrency` threads, each with its own client."""
    ready = threading.Barrier(concurrency + 1)
    start_at = [0.0]
    latencies = [[] for _ in range(concurrency)]
    errors = []

    def worker(index):
        try:
            call, close = MAKERS[name](server)
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
            ready.abort()
            return
        try:
            ready.wait()
            window_start = start_at[0] + warmup
            window_end = window_start + seconds
            i = index
            while True:
                t0 = time.perf_counter()
                if t0 >= window_end:
                    break
                call(images[i % len(images)])
                t1 = time.perf_counter()
                if window_start <= t1 <= window_end:  # completions in the window
                    latencies[index].append(t1 - t0)
                i += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start_at[0] = time.perf_counter()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    if errors:
        raise RuntimeError(f"{name}: {errors[0]!r}") from errors[0]
    # The barrier released every thread at about start_at + the barrier's own latency: take the
    # window's edges from start_at, which the workers use too.
    window_start = start_at[0] + warmup
    time.sleep(max(0.0, window_start - time.perf_counter()))
    cpu0, server0 = time.process_time(), server_cpu_seconds(server["pid"])
    machine0 = machine_cpu_seconds()
    time.sleep(max(0.0, window_start + seconds - time.perf_counter()))
    cpu1, server1 = time.process_time(), server_cpu_seconds(server["pid"])
    machine1 = machine_cpu_seconds()
    for thread in threads:
        thread.join(timeout=CALL_SECONDS)
    if errors:
        raise RuntimeError(f"{name}: {errors[0]!r}") from errors[0]
    all_latencies = sorted(x for per_thread in latencies for x in per_thread)
    requests = len(all_latencies)
    return {"transport": name, "concurrency": concurrency, "seconds": seconds,
            "requests": requests, "images_per_second": requests / seconds,
            "p50_ms": 1000 * statistics.median(all_latencies) if requests else None,
            "p90_ms": 1000 * all_latencies[int(0.9 * (requests - 1))] if requests else None,
            "client_cpu_ms_per_request": 1000 * (cpu1 - cpu0) / requests if requests else None,
            "server_cpu_ms_per_request": 1000 * (server1 - server0) / requests
            if requests else None,
            # cores' worth of CPU that other processes (not the server, not this client) took
            "other_cpu_cores": max(0.0, (machine1 - machine0) - (server1 - server0)
                                   - (cpu1 - cpu0)) / seconds}


def summarise(cells, transports, concurrencies):
    rows = []
    for c in concurrencies:
        by_round = {}
        for cell in cells:
            if cell["concurrency"] == c:
                by_round.setdefault(cell["round"], {})[cell["transport"]] = cell
        for name in transports:
            mine = [r[name] for r in by_round.values() if name in r]
            ratios = [r[name]["images_per_second"] / r[BASELINE]["images_per_second"]
                      for r in by_round.values() if name in r and BASELINE in r
                      and r[BASELINE]["images_per_second"] > 0]

            def median(key):
                values = [m[key] for m in mine if m[key] is not None]
                return statistics.median(values) if values else None
            rows.append({"concurrency": c, "transport": name,
                         "images_per_second": median("images_per_second"),
                         "p50_ms": median("p50_ms"),
                         "client_cpu_ms_per_request": median("client_cpu_ms_per_request"),
                         "server_cpu_ms_per_request": median("server_cpu_ms_per_request"),
                         "other_cpu_cores": median("other_cpu_cores"),
                         "ratio_to_native": statistics.median(ratios) if ratios else None,
                         "ratios": ratios,
                         "images_per_second_per_round": [m["images_per_second"] for m in mine]})
    return rows


def table(rows):
    def f(value, fmt):
        return "n/a" if value is None else format(value, fmt)
    lines = ["| concurrency | transport | images/s | / native gRPC (per-round ratios) | p50 ms "
             "| client CPU ms/request | server CPU ms/request | other processes' CPU (cores) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ratios = ", ".join(format(r, ".3f") for r in row["ratios"])
        lines.append(f"| {row['concurrency']} | {row['transport']} "
                     f"| {f(row['images_per_second'], '.2f')} "
                     f"| {f(row['ratio_to_native'], '.3f')} ({ratios}) "
                     f"| {f(row['p50_ms'], '.1f')} "
                     f"| {f(row['client_cpu_ms_per_request'], '.2f')} "
                     f"| {f(row['server_cpu_ms_per_request'], '.1f')} "
                     f"| {f(row['other_cpu_cores'], '.2f')} |")
    return "\n".join(lines)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default="1,16", help="comma-separated (default 1,16)")
    parser.add_argument("--seconds", type=float, default=20, help="measured window per cell")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured start of each cell")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=8, help="distinct images sent in turn")
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--quiet_wait", type=float, default=30,
                        help="before each cell, wait at most this long for a second in which "
                             "other processes take < 0.25 cores (the machine is shared)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 round, 3 s windows after 1 s of warm-up")
    parser.add_argument("--json", help="write the raw cells and the summary here")
    parser.add_argument("--server", default=SERVER, help="dinov3-server binary")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.warmup, args.quiet_wait = 1, 3, 1, 2
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    transports = args.transports.split(",")
    unknown = set(transports) - set(MAKERS)
    if unknown or BASELINE not in transports:
        sys.exit(f"unknown transports {sorted(unknown)}; {BASELINE} is required")
    images, image_note = make_images(args.images)
    began = time.time()
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        model = export_random_model(tmp, seed=1, depth=12, name="vits16.pt")
        log = os.path.join(tmp, "server.log")
        proc, target, client = start_server(model, log, server=args.server)
        try:
            server = {"target": target, "http_port": http_port(log), "pid": proc.pid,
                      "name": client.model_info().name}
            check_agreement(server, images)
            for r in range(args.rounds):
                order = transports[r % len(transports):] + transports[:r % len(transports)]
                for c in concurrencies:
                    for name in order:
                        waited = wait_for_quiet(proc.pid, args.quiet_wait)
                        cell = run_cell(server, name, c, images, args.warmup, args.seconds)
                        cell["round"] = r
                        cell["waited_for_quiet_seconds"] = round(waited, 1)
                        cells.append(cell)
                        print(f"round {r + 1}/{args.rounds} c={c:<3} {name:<16} "
                              f"{cell['images_per_second']:6.2f} img/s  "
                              f"p50 {cell['p50_ms'] or 0:7.1f} ms  client CPU "
                              f"{cell['client_cpu_ms_per_request'] or 0:5.2f} ms/req  "
                              f"server CPU {cell['server_cpu_ms_per_request'] or 0:6.1f} ms/req  "
                              f"others {cell['other_cpu_cores']:.2f} cores",
                              flush=True)
        finally:
            stop_server(proc, client)
    rows = summarise(cells, transports, concurrencies)
    meta = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "command": " ".join(sys.argv),
            "images": image_note, "rounds": args.rounds, "seconds": args.seconds,
            "warmup": args.warmup, "run_minutes": round((time.time() - began) / 60, 1)}
    print(f"\n{meta['cpu']}, {meta['cores']} cores, {meta['date_utc']} UTC, "
          f"{meta['run_minutes']} min; {image_note}")
    print(f"{args.rounds} round(s) x {args.seconds:g} s per cell after {args.warmup:g} s warm-up; "
          "medians over rounds\n")
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "summary": rows, "cells": cells}, f, indent=1)


if __name__ == "__main__":
    main()
