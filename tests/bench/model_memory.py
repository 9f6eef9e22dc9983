"""Resident memory of dinov3-server serving 1 model x 1 CPU instance, 1 model x 4 CPU instances
and 2 models (x 1 instance each), against the weights' size.

The models are random full-depth exports (vitb16, 343 MB of float32 weights, and vits16, 88 MB),
made in a temporary folder. Each server is started (--config with a models list), waits for
SERVING, answers 8 Embed calls of one 224x224 image on each model (so every instance ran), and
its VmRSS and VmHWM (peak) are read from /proc. With --before BIN, the same configurations run on
that binary too (e.g. a build from before instances shared their weights), in turns, one run.

  .venv/bin/python tests/bench/model_memory.py [--before /tmp/prev/dinov3-server]
"""
import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.server_process import (SERVER, export_random_model,  # noqa: E402
                                                      start_server, stop_server)

MIB = 1 << 20


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def config(path, models, instances):
    lines = ["models:"]
    for name, export in models.items():
        lines += [f"  - name: {name}", f"    path: {export}",
                  f"    instances_per_device: {instances}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def measure(server, models, instances, directory):
    cfg = config(os.path.join(directory, "config.yaml"), models, instances)
    log = os.path.join(directory, "server.log")
    proc, _, client = start_server(None, log, f"--config={cfg}", "--intra_op_threads=1",
                                   server=server)
    try:
        image = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
        for name in models:
            for _ in range(8):
                client.embed([image], model=name)
        return status_kib(proc.pid, "VmRSS") * 1024, status_kib(proc.pid, "VmHWM") * 1024
    finally:
        stop_server(proc, client)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="another dinov3-server binary to measure too")
    args = parser.parse_args()
    servers = {"now": SERVER}
    if args.before:
        servers = {"before": args.before, **servers}
    with tempfile.TemporaryDirectory() as tmp:
        b16 = export_random_model(tmp, seed=1, depth=12, variant="vitb16", name="vitb16.pt")
        s16 = export_random_model(tmp, seed=2, depth=12, variant="vits16", name="vits16.pt")
        cases = [("vitb16 x1", {"b16": b16}, 1), ("vitb16 x4", {"b16": b16}, 4),
                 ("vitb16 x1 + vits16 x1", {"b16": b16, "s16": s16}, 1)]
        print(f"weights: vitb16 {os.path.getsize(b16) / MIB:.0f} MiB, "
              f"vits16 {os.path.getsize(s16) / MIB:.0f} MiB (export files)")
        print("| served | " + " | ".join(f"{s} RSS / peak MiB" for s in servers) + " |")
        print("|---|" + "---|" * len(servers))
        for label, models, instances in cases:
            cells = []
            for server in servers.values():
                rss, peak = measure(server, models, instances, tmp)
                cells.append(f"{rss / MIB:.0f} / {peak / MIB:.0f}")
            print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
