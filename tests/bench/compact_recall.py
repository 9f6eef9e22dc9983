"""Recall@10 of the compact CLS dtypes (int8, uint8, binary) against float32, and their bytes.

The images: the four quadrants of each wallpaper photograph that tests/integration/python/
photo_set.py finds (Debian's mate, lomiri, ukui and plasma wallpaper packages, 56 pictures),
each quadrant scaled to 448 px on its longer side and sent as a PNG: 224 real images, with
the near neighbours real collections have (quadrants of one photo, several photos of a kind).

dinov3-server serves a random (untrained) full-depth model of --variant; each image's CLS is
fetched L2-normalised as float32, int8, uint8 and binary. For every image as the query, its 10
nearest other images by cosine of the float32 vectors are the truth; each compact dtype ranks by
its own metric (int8 / uint8: cosine of the dequantised vectors; binary: Hamming distance,
ties broken by index) and recall@10 is the mean share of the truth found in its top 10. With
untrained weights this measures what quantisation loses, not retrieval quality.

  .venv/bin/python tests/bench/compact_recall.py [--variant vits16] [--out FILE.json]
"""
import argparse
import io
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, ROOT)
from tests.integration.python.photo_set import photos  # noqa: E402
from tests.integration.python.server_process import (export_random_model, start_server,  # noqa
                                                      stop_server)
from dinov3_client.tensors import dequantize  # noqa: E402
from model.dinov3.config import preset  # noqa: E402

K = 10
SIDE = 448
DTYPES = ("float32", "int8", "uint8", "binary")


def quadrant_pngs():
    """PNG bytes of the four quadrants of every photo, scaled to SIDE px on the longer side."""
    images = []
    for path in photos():
        with Image.open(path) as photo:
            photo = photo.convert("RGB")
            w, h = photo.size
            for left, top in ((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)):
                quadrant = photo.crop((left, top, left + w // 2, top + h // 2))
                quadrant.thumbnail((SIDE, SIDE), Image.LANCZOS)
                buffer = io.BytesIO()
                quadrant.save(buffer, format="PNG")
                images.append(buffer.getvalue())
    return images


def top_k(scores):
    """Indices of the K best-scoring other items per row (higher is better)."""
    scores = scores.astype(np.float64).copy()
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :K]


def recall(truth, found):
    return float(np.mean([len(set(t) & set(f)) / K for t, f in zip(truth, found)]))


def embed_all(client, images, dtype):
    vectors, scales = [], []
    for start in range(0, len(images), 8):
        for result in client.embed(images[start:start + 8], outputs=("cls",), dtype=dtype,
                                   l2_normalize=True):
            vectors.append(result.cls)
            scales.append(result.scales.get("cls"))
    return np.stack(vectors), (np.stack(scales) if scales[0] is not None else None)


def measure(client, images, dim):
    stored = {dtype: embed_all(client, images, dtype) for dtype in DTYPES}
    floats = stored["float32"][0]
    truth = top_k(floats @ floats.T)
    rows = {}
    for dtype in DTYPES:
        values, scales = stored[dtype]
        if dtype == "binary":
            bits = dequantize(values, "binary", dim=dim)
            hamming = bits @ (1 - bits).T + (1 - bits) @ bits.T
            found = top_k(-hamming)
        else:
            approx = dequantize(values, dtype, scales)
            approx /= np.linalg.norm(approx, axis=1, keepdims=True)
            found = top_k(approx @ approx.T)
        wire = values[0].nbytes + (4 if scales is not None else 0)
        rows[dtype] = {"recall_at_10": recall(truth, found), "bytes_per_vector": wire}
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", default="vits16")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    images = quadrant_pngs()
    with tempfile.TemporaryDirectory() as tmp:
        depth = preset(args.variant).depth
        model = export_random_model(tmp, seed=0, depth=depth, variant=args.variant)
        proc, _, client = start_server(model, os.path.join(tmp, "server.log"))
        try:
            dim = int(client.model_info().embed_dim)
            rows = measure(client, images, dim)
        finally:
            stop_server(proc, client)
    result = {"variant": args.variant, "images": len(images), "dim": dim, "k": K, "dtypes": rows}
    print(f"{args.variant} (random weights), {len(images)} images, D={dim}, recall@{K} vs float32")
    print("| dtype | recall@10 | bytes per vector | vs float32 |")
    print("|---|---|---|---|")
    for dtype, row in rows.items():
        ratio = rows["float32"]["bytes_per_vector"] / row["bytes_per_vector"]
        print(f"| {dtype} | {row['recall_at_10']:.3f} | {row['bytes_per_vector']} | "
              f"{ratio:.1f}x smaller |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
