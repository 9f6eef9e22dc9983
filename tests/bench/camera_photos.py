"""Served throughput for camera-size photos, exact and fast decode, against a previous build.

A 500x375 and a 4000x3000 (12 MP) JPEG, both made from one real photograph of Debian's
lomiri-wallpapers-16.04 (Dragonfly_by_Bolly.jpg, 4224x3168, scaled with Lanczos, quality 90),
are sent by dinov3-bench (closed loop, concurrency 1 and 2, one image per request, encoded) to
dinov3-server serving a random full-depth vits16 on the CPU:
  - `before`: the server binary given with --before (e.g. the previous commit's build), its
    defaults;
  - `exact`: build/bin/dinov3-server, its defaults (server.decode exact);
  - `fast`: build/bin/dinov3-server --decode=fast.
The servers take turns per input in one run, so the ratios come from the same conditions. Prints
the markdown table of BENCHMARKS.md "Camera-size photos" and writes each point's JSON to --out.

  .venv/bin/python tests/bench/camera_photos.py --before /tmp/prev/build/bin/dinov3-server \\
      [--out tests/bench/results/camera-photos] [--window_seconds 10]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.server_process import (BIN_DIR, SERVER, export_random_model,  # noqa
                                                      start_server, stop_server)

PHOTO = "/usr/share/backgrounds/Dragonfly_by_Bolly.jpg"
INPUTS = {"500x375": (500, 375), "4000x3000": (4000, 3000)}


def make_inputs(directory):
    """{name: path} of the JPEGs, made from PHOTO."""
    if not os.path.exists(PHOTO):
        sys.exit(f"no {PHOTO}: install lomiri-wallpapers-16.04 (scripts/setup.sh does)")
    paths = {}
    with Image.open(PHOTO) as photo:
        for name, size in INPUTS.items():
            path = os.path.join(directory, f"{name}.jpg")
            photo.convert("RGB").resize(size, Image.LANCZOS).save(path, "JPEG", quality=90)
            paths[name] = path
    return paths


def bench(target, image, out_json, window_seconds):
    subprocess.run([os.path.join(BIN_DIR, "dinov3-bench"), f"--target={target}",
                    "--concurrency=1,2", f"--images={image}",
                    f"--window_seconds={window_seconds}", f"--json={out_json}"],
                   check=True, stdout=subprocess.DEVNULL)
    with open(out_json) as f:
        return json.load(f)


def rows_of(result):
    """{concurrency: (images/s, server preprocess ms, server inference ms)}."""
    rows = {}
    for point in result["points"]:
        server_ms = point.get("server_ms") or {}
        rows[point["concurrency"]] = (point["images_per_second"], server_ms.get("preprocess"),
                                      server_ms.get("inference"))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the server binary to compare against")
    parser.add_argument("--out", default=os.path.join(ROOT, "tests/bench/results/camera-photos"))
    parser.add_argument("--window_seconds", type=float, default=10)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    servers = {"before": (args.before, ()), "exact": (SERVER, ()),
               "fast": (SERVER, ("--decode=fast",))}
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = export_random_model(tmp, seed=0, depth=12)
        inputs = make_inputs(tmp)
        for input_name, image in inputs.items():
            for server_name, (binary, flags) in servers.items():
                proc, target, client = start_server(model, os.path.join(tmp, "server.log"),
                                                    *flags, server=binary)
                try:
                    out_json = os.path.join(args.out, f"{server_name}-{input_name}.json")
                    result = bench(target, image, out_json, args.window_seconds)
                finally:
                    stop_server(proc, client)
                table[(input_name, server_name)] = rows_of(result)
    print("| input | server | img/s c=1 / c=2 | server preprocess ms (c=1) | "
          "server inference ms (c=1) |")
    print("|---|---|---|---|---|")
    for (input_name, server_name), rows in table.items():
        ips = " / ".join(f"{rows[c][0]:.1f}" for c in (1, 2))
        print(f"| {input_name} JPEG | {server_name} | {ips} | {rows[1][1]:.1f} | {rows[1][2]:.1f} |")
    exact, before = table[("4000x3000", "exact")], table[("4000x3000", "before")]
    print(f"\n12 MP exact / before at c=2: {exact[2][0] / before[2][0]:.2f}x")
    fast, base = table[("4000x3000", "fast")], table[("500x375", "exact")]
    print(f"500x375 exact / 12 MP fast at c=2: {base[2][0] / fast[2][0]:.2f}x")


if __name__ == "__main__":
    main()
