"""Two models in one server: each model's throughput served alone against both served together
under a 50/50 mixed load, and the time a replace takes from LoadModel to the switch.

Models: random full-depth vits16 ("small") and vits16plus ("plus"), CPU, float32, default
batching. One run, servers in turn:
  - `small alone`, `plus alone`: a server with that one model, dinov3-bench --model=NAME;
  - `both, mixed 50/50`: a server with both, dinov3-bench --model=small:1,plus:1 (requests
    alternate exactly), against the rate the two alone-rates predict for a 50/50 mix: the
    harmonic mean 2 / (1/small + 1/plus) (each image costs what it costs alone);
  - replace: on the two-model server, LoadModel("small") with another export of the same
    variant (admin key, model repository), 3 times; LoadModelResponse.switch_seconds (load +
    warm-up + switch) and retire_seconds (the old export's drain and release).
Closed loop at --concurrency (default 4), 224x224 raw RGB images, dinov3-bench's stable windows.

  .venv/bin/python tests/bench/multi_model.py [--concurrency 4] [--window_seconds 5]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.server_process import (BIN_DIR, export_random_model,  # noqa: E402
                                                      start_server, stop_server)
from dinov3_client import EmbeddingClient  # noqa: E402

ADMIN_KEY = "bench-admin-key-0123456789"


def config(path, models, admin=None):
    lines = ["models:"]
    for name, export in models.items():
        lines += [f"  - name: {name}", f"    path: {export}"]
    if admin:
        lines += ["admin:", f"  api_keys_file: {admin[0]}", f"  model_repository: {admin[1]}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return f"--config={path}"


def bench(target, model, concurrency, window_seconds, out_json):
    subprocess.run([os.path.join(BIN_DIR, "dinov3-bench"), f"--target={target}",
                    f"--concurrency={concurrency}", f"--model={model}",
                    f"--window_seconds={window_seconds}", f"--json={out_json}"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(out_json) as f:
        return json.load(f)["points"][0]["images_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--window_seconds", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = os.path.join(tmp, "repo")
        os.makedirs(repo)
        exports = {"small": export_random_model(tmp, seed=1, depth=12, name="small.pt"),
                   "plus": export_random_model(tmp, seed=2, depth=12, variant="vits16plus",
                                               name="plus.pt")}
        export_random_model(repo, seed=3, depth=12, name="small.pt")  # the replacement
        keys = os.path.join(tmp, "admin.keys")
        with open(keys, "w") as f:
            f.write(ADMIN_KEY + "\n")
        out = os.path.join(tmp, "bench.json")
        log = os.path.join(tmp, "server.log")
        rates = {}
        for name in ["small", "plus"]:
            proc, target, client = start_server(
                None, log, config(os.path.join(tmp, f"{name}.yaml"), {name: exports[name]}))
            try:
                rates[f"{name} alone"] = bench(target, name, args.concurrency,
                                               args.window_seconds, out)
            finally:
                stop_server(proc, client)
        proc, target, client = start_server(
            None, log, config(os.path.join(tmp, "both.yaml"), exports, (keys, repo)))
        try:
            rates["both, mixed 50/50"] = bench(target, "small:1,plus:1", args.concurrency,
                                               args.window_seconds, out)
            with EmbeddingClient(target, timeout=600, api_key=ADMIN_KEY) as admin:
                replaces = [admin.load_model("small") for _ in range(3)]
        finally:
            stop_server(proc, client)
    predicted = 2 / (1 / rates["small alone"] + 1 / rates["plus alone"])
    print(f"| served | images/s (concurrency {args.concurrency}) |")
    print("|---|---|")
    for label, rate in rates.items():
        print(f"| {label} | {rate:.1f} |")
    print(f"| 50/50 predicted from the alone rates (harmonic mean) | {predicted:.1f} |")
    print(f"\nmixed / predicted: {rates['both, mixed 50/50'] / predicted:.3f}")
    print("replace (LoadModel of a full-depth vits16 over the served one): switch "
          + ", ".join(f"{r.switch_seconds:.2f}" for r in replaces) + " s; old export freed "
          + ", ".join(f"{r.retire_seconds:.3f}" for r in replaces) + " s later")


if __name__ == "__main__":
    main()
