"""Batching benchmark (a measurement, not a test): throughput and latency of dinov3-server at
several client concurrencies with batching on and off, next to the bare model's throughput at
the same batch sizes with no server (the ceiling). Same model, same machine, one run.

    .venv/bin/python tests/bench/bench_batching.py [--model FILE.pt] [--seconds 15] \
        [--concurrency 1,4,16,64] [--batch-sizes 1,8] [--device cpu] [--write BENCHMARKS.md]

Closed loop: each of C client threads sends one raw 224x224 image per Embed call (CLS + pooled)
and sends the next as soon as the answer is back. The ceiling comes from dinov3-model-check
(same LibTorch, same threads) at each batch size.
"""
import argparse
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.server_process import BIN_DIR, running_server  # noqa: E402


def ceiling(model, batch, device):
    out = subprocess.run([os.path.join(BIN_DIR, "dinov3-model-check"), f"--batch={batch}",
                          "--iterations=10", f"--device={device}", model],
                         capture_output=True, text=True, check=True).stdout
    ms = float(re.search(r"mean_of_\d+=([\d.]+) ms", out).group(1))
    return batch * 1000.0 / ms


def load(client, concurrency, seconds):
    image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    request = client.build_request([image])
    latencies, batch_sizes, lock = [], [], threading.Lock()
    stop = time.monotonic() + seconds

    def loop():
        while time.monotonic() < stop:
            start = time.perf_counter()
            response = client.stub.Embed(request, timeout=300)
            with lock:
                latencies.append(time.perf_counter() - start)
                batch_sizes.append(response.timing.batch_size)

    for _ in range(2):  # warm the connection and the server
        client.stub.Embed(request, timeout=300)
    began = time.monotonic()
    threads = [threading.Thread(target=loop) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - began
    ms = np.array(latencies) * 1000
    return {"throughput": len(latencies) / elapsed, "p50": np.percentile(ms, 50),
            "p99": np.percentile(ms, 99), "batch": np.mean(batch_sizes)}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join(ROOT, "models", "dinov3-vits16-untrained.pt"))
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument("--batch-sizes", default="1,8", help="server max_batch_size values")
    p.add_argument("--device", default="cpu")
    p.add_argument("--write", help="write the markdown report to this file")
    args = p.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    lines = ["| server max_batch_size | concurrency | images/s | p50 ms | p99 ms | mean batch |",
             "|---|---|---|---|---|---|"]
    results = {}
    for max_batch in batch_sizes:
        flags = [f"--max_batch_size={max_batch}", "--max_queue_delay_ms=5",
                 f"--devices={args.device}"]
        with running_server(args.model, "/tmp/bench-server.log", *flags) as (_, client):
            for c in concurrencies:
                r = load(client, c, args.seconds)
                results[(max_batch, c)] = r
                lines.append(f"| {max_batch} | {c} | {r['throughput']:.1f} | {r['p50']:.0f} | "
                             f"{r['p99']:.0f} | {r['batch']:.1f} |")
                print(lines[-1], flush=True)
    ceilings = {b: ceiling(args.model, b, args.device) for b in sorted(set(batch_sizes))}
    lines += ["", "| bare model batch size | images/s (ceiling) |", "|---|---|"]
    lines += [f"| {b} | {v:.1f} |" for b, v in ceilings.items()]
    on, off = max(batch_sizes), min(batch_sizes)
    if (on, 16) in results and (off, 16) in results:
        ratio = results[(on, 16)]["throughput"] / results[(off, 16)]["throughput"]
        lines.append(f"\nBatching on/off throughput at concurrency 16: {ratio:.2f}x")
    best = max(results[(on, c)]["throughput"] for c in concurrencies)
    lines.append(f"Server best throughput / bare model at batch {on}: "
                 f"{best / ceilings[on]:.2f}")
    report = "\n".join(lines)
    print(report)
    if args.write:
        with open(args.write, "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
