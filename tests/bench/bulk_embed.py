"""dinov3-embed's throughput against the server's saturated throughput, the bytes per image of
each output format, and dinov3-index's build and query time.

One dinov3-server (build/bin, default flags, CPU) serves a random full-depth --variant (default
vits16). The images: --crops 640x480 JPEG crops (quality 90) of each real photograph of
photo_set.photos() (Debian's wallpaper packages), written once into a temporary folder.
  - saturated throughput: dinov3-bench --method=stream with those files, --batch images per
    request, at concurrency 2, 4 and 8; the best images/s is the ceiling;
  - dinov3-embed over the folder (--batch per request, --window in flight, Parquet float32
    cls+pooled), images/s from its wall time (start-up included) and from its own report, and
    the CPU seconds the command used (taken from the server on this machine);
  the two alternate --rounds times on the same server, so drift affects both alike, and the
  ratio is taken per round.
  - bytes per image: dinov3-embed over the folder with each format and dtype, the shard bytes
    (manifest.jsonl) over the rows;
  - the index: dinov3-index (flat and hnsw) over the float32 run, build seconds, and the mean
    seconds of a top-10 query of every row's vector (index.search of one vector at a time).

  .venv/bin/python tests/bench/bulk_embed.py [--out tests/bench/results/cpu/bulk_embed.json]
"""
import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.bulk_helpers import bulk_env, embed_command  # noqa: E402
from tests.integration.python.photo_set import photos  # noqa: E402
from tests.integration.python.server_process import (BIN_DIR, export_random_model,  # noqa
                                                      start_server, stop_server)

CROP = (640, 480)
FORMATS = [("parquet", "float32"), ("parquet", "float16"), ("parquet", "int8"),
           ("parquet", "binary"), ("npy", "float32"), ("npy", "float16")]


def make_images(folder, crops):
    rng = np.random.default_rng(0)
    paths = []
    for number, photo in enumerate(photos()):
        with Image.open(photo) as image:
            image = image.convert("RGB")
            for crop in range(crops):
                scale = rng.uniform(0.3, 1.0) * min(image.width / CROP[0], image.height / CROP[1])
                w, h = int(CROP[0] * scale), int(CROP[1] * scale)
                x, y = rng.integers(0, image.width - w + 1), rng.integers(0, image.height - h + 1)
                path = os.path.join(folder, f"photo{number:02d}-{crop}.jpg")
                image.crop((x, y, x + w, y + h)).resize(CROP, Image.BICUBIC).save(
                    path, "JPEG", quality=90)
                paths.append(path)
    return paths


def bench_throughput(target, images, batch, concurrency, scratch):
    out = os.path.join(scratch, "bench.json")
    subprocess.run([os.path.join(BIN_DIR, "dinov3-bench"), f"--target={target}",
                    "--method=stream", f"--images={','.join(images)}",
                    f"--images_per_request={batch}", f"--concurrency={concurrency}",
                    f"--json={out}", "--progress=false", "--max_seconds=60"],
                   check=True, capture_output=True)
    with open(out) as f:
        return max(p["images_per_second"] for p in json.load(f)["points"])


def run_embed(folder, target, out, *flags):
    """(wall seconds, images/s the command reported, CPU seconds the command used)."""
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(embed_command(folder, f"--server={target}", f"--out={out}", *flags),
                          capture_output=True, text=True, env=bulk_env())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"dinov3-embed failed:\n{done.stderr}")
    reported = float(re.findall(r"([0-9.]+) images/s", done.stderr)[-1])
    return wall, reported, after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime


def shard_bytes(out):
    with open(os.path.join(out, "manifest.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    return sum(m["bytes"] for m in lines) / sum(m["rows"] for m in lines)


def index_times(out):
    import faiss

    from dinov3_client.bulk.index import build_index, normalise
    from dinov3_client.bulk.store import load_collection

    vectors = normalise(load_collection(out, "cls").vectors)
    result = {}
    for kind in ("flat", "hnsw"):
        start = time.perf_counter()
        index = build_index(vectors, kind)
        build = time.perf_counter() - start
        start = time.perf_counter()
        for row in vectors:
            index.search(row[None, :], 10)
        query = (time.perf_counter() - start) / len(vectors)
        result[kind] = {"build_seconds": build, "query_seconds": query,
                        "vectors": int(index.ntotal)}
    result["faiss"] = faiss.__version__
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None)
    parser.add_argument("--variant", default="vits16")
    parser.add_argument("--crops", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(ROOT, "client", "python"))
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.join(scratch, "images")
        os.mkdir(folder)
        images = make_images(folder, args.crops)
        model = export_random_model(scratch, seed=5, depth=12, variant=args.variant)
        proc, target, client = start_server(model, os.path.join(scratch, "server.log"))
        try:
            rounds = []
            for number in range(args.rounds):
                ceiling = bench_throughput(target, images, args.batch, "2,4,8", scratch)
                out = os.path.join(scratch, f"run{number}")
                wall, reported, cpu = run_embed(folder, target, out, f"--batch={args.batch}",
                                                f"--window={args.window}",
                                                "--progress-seconds=60")
                rounds.append({"bench_images_per_second": ceiling,
                               "embed_wall_seconds": wall, "embed_cpu_seconds": cpu,
                               "embed_images_per_second_wall": len(images) / wall,
                               "embed_images_per_second_reported": reported,
                               "ratio_wall": len(images) / wall / ceiling,
                               "ratio_reported": reported / ceiling})
                print(json.dumps(rounds[-1]), flush=True)
            sizes = {}
            for fmt, dtype in FORMATS:
                out = os.path.join(scratch, f"size-{fmt}-{dtype}")
                run_embed(folder, target, out, f"--format={fmt}", f"--dtype={dtype}",
                          "--progress-seconds=60")
                sizes[f"{fmt} {dtype}"] = shard_bytes(out)
            index = index_times(os.path.join(scratch, "run0"))
        finally:
            stop_server(proc, client)
    report = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "variant": args.variant, "images": len(images), "image_size": list(CROP),
              "batch": args.batch, "window": args.window, "rounds": rounds,
              "bytes_per_image": sizes, "index": index}
    print(json.dumps(report, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
