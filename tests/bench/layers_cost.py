"""The cost of returning 4 intermediate layers (last_layers=4) beside the final outputs.

dinov3-server (build/bin, default flags, CPU) serves a random full-depth vitb16; one server
answers every case, so the ratios come from the same conditions. The cases, each asked for the
final outputs only and with last_layers=4 (layer_norm unset: the final norm applied):
  - embed-cls-pooled: Embed of one 224x224 JPEG, outputs cls + pooled;
  - embed-patch-tokens: the same with outputs cls + pooled + patch_tokens;
  - dense-448: EmbedDense of one 448x448 JPEG (Preprocess 448x448), the final patch rows vs the
    final rows and each of the 4 blocks' rows.
The JPEGs are made from one real photograph (Debian's lomiri-wallpapers-16.04,
Dragonfly_by_Bolly.jpg, a centre square scaled with Lanczos, quality 90).

Per case and variant: the client-side round trip (building the request, the call, decoding the
response exactly as client.embed / embed_dense / embed_dense_layers do) over --calls calls after
--warmup calls, the two variants interleaved call by call (the first of each pair alternating)
so drift affects both alike; median and p90, and the median of the per-pair ratios (each pair
ran back to back, so it is the figure that stands when other work shares the machine). The
response size is the serialized protobuf (EmbedResponse.ByteSize(); for EmbedDense the sum of
the DenseChunks' ByteSize()), and the server's Timing (preprocess, inference seconds) is kept
beside it.

  .venv/bin/python tests/bench/layers_cost.py [--out tests/bench/results/cpu/FILE.json]
      [--calls 30] [--dense_calls 20] [--warmup 3]
"""
import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.server_process import (export_random_model, start_server,  # noqa
                                                      stop_server)
from dinov3_client import EmbeddingResult, embedding_pb2 as pb2  # noqa: E402
from dinov3_client.tensors import assemble_dense, assemble_dense_layers  # noqa: E402
from model.dinov3.config import preset  # noqa: E402

PHOTO = "/usr/share/backgrounds/Dragonfly_by_Bolly.jpg"
VARIANT = "vitb16"
LAST_LAYERS = 4
DENSE_SIDE = 448


def jpeg(side):
    """JPEG bytes of PHOTO's centre square scaled to side x side."""
    if not os.path.exists(PHOTO):
        sys.exit(f"no {PHOTO}: install lomiri-wallpapers-16.04 (scripts/setup.sh does)")
    with Image.open(PHOTO) as photo:
        photo = photo.convert("RGB")
        w, h = photo.size
        s = min(w, h)
        square = photo.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        buffer = io.BytesIO()
        square.resize((side, side), Image.LANCZOS).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()


def embed_call(client, image, outputs, last_layers):
    """One client.embed round trip; (seconds, response bytes, server timing)."""
    start = time.perf_counter()
    request = client.build_request([image], outputs, last_layers=last_layers)
    response = client.stub.Embed(request, timeout=client.timeout)
    results = [EmbeddingResult.from_proto(e) for e in response.embeddings]
    seconds = time.perf_counter() - start
    assert len(results[0].layers) == last_layers
    return seconds, response.ByteSize(), response.timing


def dense_call(client, image, last_layers):
    """One client.embed_dense / embed_dense_layers round trip; (seconds, bytes, timing)."""
    start = time.perf_counter()
    request = pb2.EmbedDenseRequest(
        image=pb2.Image(encoded=image), dtype=pb2.FLOAT32, model=client.model,
        preprocess=pb2.Preprocess(mode=pb2.RESIZE_FIXED, height=DENSE_SIDE, width=DENSE_SIDE),
        last_layers=last_layers)
    chunks = list(client.stub.EmbedDense(request, timeout=client.timeout))
    if last_layers:
        _, layers = assemble_dense_layers(chunks)
        assert len(layers) == last_layers
    else:
        assemble_dense(chunks)
    seconds = time.perf_counter() - start
    timing = next(c.timing for c in chunks if c.HasField("timing"))
    return seconds, sum(c.ByteSize() for c in chunks), timing


def summary(samples):
    seconds = np.array([s for s, _, _ in samples]) * 1000
    sizes = sorted({b for _, b, _ in samples})
    return {"calls": len(samples), "p50_ms": float(np.percentile(seconds, 50)),
            "p90_ms": float(np.percentile(seconds, 90)), "mean_ms": float(seconds.mean()),
            "min_ms": float(seconds.min()), "max_ms": float(seconds.max()),
            "response_bytes": sizes[0] if len(sizes) == 1 else sizes,
            "server_preprocess_ms_p50": float(np.median([t.preprocess_seconds
                                                         for _, _, t in samples]) * 1000),
            "server_inference_ms_p50": float(np.median([t.inference_seconds
                                                        for _, _, t in samples]) * 1000)}


def measure(call, calls, warmup):
    """{"final": summary, "layers": summary} of call(last_layers), the two interleaved."""
    for _ in range(warmup):
        call(0)
        call(LAST_LAYERS)
    samples = {0: [], LAST_LAYERS: []}
    for i in range(calls):
        order = (0, LAST_LAYERS) if i % 2 == 0 else (LAST_LAYERS, 0)
        for last_layers in order:
            samples[last_layers].append(call(last_layers))
    # Each pair ran back to back, so its ratio sees the same load: robust to drift and to other
    # work on the machine, which the ratio of the medians is not.
    paired = [b[0] / a[0] for a, b in zip(samples[0], samples[LAST_LAYERS])]
    return {"final": summary(samples[0]), "layers": summary(samples[LAST_LAYERS]),
            "paired_latency_ratio_p50": float(np.median(paired)),
            "paired_latency_ratios": [round(r, 4) for r in paired]}


def cpu_model():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines()
                 if line.startswith("Model name")), platform.processor())


def git_commit():
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
    return git("rev-parse", "HEAD") + (" (dirty)" if git("status", "--porcelain") else "")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--calls", type=int, default=30, help="timed calls per Embed point")
    parser.add_argument("--dense_calls", type=int, default=20,
                        help="timed calls per EmbedDense point")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per point first")
    args = parser.parse_args()
    small, large = jpeg(224), jpeg(DENSE_SIDE)
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        model = export_random_model(tmp, seed=0, depth=preset(VARIANT).depth, variant=VARIANT)
        proc, _, client = start_server(model, os.path.join(tmp, "server.log"))
        try:
            info = client.model_info()
            cases = {
                "embed-cls-pooled": (
                    "Embed 224x224, cls + pooled",
                    lambda n: embed_call(client, small, ("cls", "pooled"), n), args.calls),
                "embed-patch-tokens": (
                    "Embed 224x224, cls + pooled + patch_tokens",
                    lambda n: embed_call(client, small, ("cls", "pooled", "patch_tokens"), n),
                    args.calls),
                "dense-448": (
                    f"EmbedDense {DENSE_SIDE}x{DENSE_SIDE}",
                    lambda n: dense_call(client, large, n), args.dense_calls),
            }
            rows = {}
            for name, (label, call, calls) in cases.items():
                rows[name] = {"label": label, **measure(call, calls, args.warmup)}
                print(f"{name}: done ({time.monotonic() - began:.0f} s)", file=sys.stderr)
        finally:
            stop_server(proc, client)
    cpu = cpu_model()
    load = os.getloadavg()
    result = {"variant": VARIANT, "weights": "random (seed 0)", "depth": preset(VARIANT).depth,
              "embed_dim": int(info.embed_dim), "device": "cpu", "cpu": cpu,
              "cpus": os.cpu_count(), "server_flags": "defaults (--device=cpu)",
              "last_layers": LAST_LAYERS, "layer_norm": "unset (true)", "dtype": "float32",
              "image": "Dragonfly_by_Bolly.jpg centre square, JPEG q90",
              "embed_image_bytes": len(small), "dense_image_bytes": len(large),
              "warmup": args.warmup, "commit": git_commit(),
              "seconds": time.monotonic() - began,
              "loadavg_at_end": [round(x, 2) for x in load], "cases": rows}
    print(f"{VARIANT} (random weights, depth {result['depth']}), CPU: {cpu}, "
          f"{os.cpu_count()} cores (load average at the end {load[0]:.2f}); "
          f"+ {LAST_LAYERS} layers = last_layers={LAST_LAYERS}")
    print(f"| case | final only (ms p50/p90, bytes) | + {LAST_LAYERS} layers (ms p50/p90, bytes) "
          "| ratio latency (p50; paired) | ratio bytes |")
    print("|---|---|---|---|---|")
    for row in rows.values():
        final, layers = row["final"], row["layers"]
        print(f"| {row['label']} | {final['p50_ms']:.0f} / {final['p90_ms']:.0f}, "
              f"{final['response_bytes']:,} | {layers['p50_ms']:.0f} / {layers['p90_ms']:.0f}, "
              f"{layers['response_bytes']:,} | {layers['p50_ms'] / final['p50_ms']:.2f}x; "
              f"{row['paired_latency_ratio_p50']:.2f}x | "
              f"{layers['response_bytes'] / final['response_bytes']:.2f}x |")
    print("\nserver Timing, p50 ms (preprocess / inference), final only vs + layers:")
    for row in rows.values():
        final, layers = row["final"], row["layers"]
        print(f"  {row['label']}: {final['server_preprocess_ms_p50']:.1f} / "
              f"{final['server_inference_ms_p50']:.1f} vs {layers['server_preprocess_ms_p50']:.1f}"
              f" / {layers['server_inference_ms_p50']:.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
