"""How close a served reduced-precision dtype comes to float32.

Two servers load the same weights, one computing in float32 and one in the dtype under test
(bfloat16, float16: the float32 export with model.compute_dtype; int8: the int8 export of the
same weights, computing as exported); both embed the same real photos (Debian's
mate-backgrounds, installed by scripts/setup.sh) and the cosine of every output to its float32
counterpart is taken: CLS, pooled (mean of the patch tokens) and each patch token.
test_compute_dtype.py asserts the bounds README "Exactness" documents; run as a script, this
prints that table:

  .venv/bin/python tests/integration/python/dtype_fidelity.py [--variants vits16,vitb16]
      [--dtypes bfloat16,float16,int8]

Models are random (UNTRAINED) full-depth exports: real weights cannot be downloaded here.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from tests.integration.python.server_process import ROOT, start_server, stop_server  # noqa: E402

PHOTO_GLOB = "/usr/share/backgrounds/mate/nature/*.jpg"
# 224x224 (the model's default input), and the aspect kept at up to 1024 patches (~640x400 for
# these 16:10 photos).
SIZES = {"224x224": None, "keep-aspect 1024 patches": {"mode": "keep_aspect", "max_patches": 1024}}
OUTPUTS = ("cls", "pooled", "patch_tokens")


def photos():
    """The photo files; fails loudly when the package is missing (never a silent skip)."""
    files = sorted(glob.glob(PHOTO_GLOB))
    if not files:
        raise RuntimeError(f"no photos at {PHOTO_GLOB}: install mate-backgrounds "
                           "(scripts/setup.sh does)")
    return files


def export_model(directory, variant, depth=None, seed=0, dtype="float32"):
    path = os.path.join(str(directory), f"{variant}-{dtype}.pt")
    cmd = [sys.executable, "-m", "model.export", "--random", "--variant", variant,
           "--seed", str(seed), "--dtype", dtype, "--output", path]
    if depth is not None:
        cmd += ["--depth", str(depth)]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return path


def embed_all(client, files, preprocess):
    """{output: [array per photo]}, one photo per call, float32 on the wire."""
    out = {name: [] for name in OUTPUTS}
    for path in files:
        [result] = client.embed([path], outputs=OUTPUTS, preprocess=preprocess)
        for name in OUTPUTS:
            out[name].append(getattr(result, name).astype(np.float64))
    return out


def cosines(a, b):
    """Row-wise cosine of two [N, D] (or [D]) arrays."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def compare(reference, test):
    """{output: (min cosine, mean cosine)} over all photos (and all tokens)."""
    stats = {}
    for name in OUTPUTS:
        values = np.concatenate([cosines(r, t) for r, t in zip(reference[name], test[name])])
        stats[name] = (float(values.min()), float(values.mean()))
    return stats


def serve_and_embed(model, compute_dtype, log_path, files, sizes=SIZES):
    """{size: embeddings} from a server computing in `compute_dtype` ("int8": `model` is an
    int8 export, served as exported)."""
    flag = "export" if compute_dtype == "int8" else compute_dtype
    proc, _, client = start_server(model, log_path, f"--compute_dtype={flag}")
    try:
        info = client.model_info()
        assert info.model_dtype == compute_dtype, (info.model_dtype, compute_dtype)
        return {size: embed_all(client, files, pre) for size, pre in sizes.items()}
    finally:
        stop_server(proc, client)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="vits16,vitb16")
    parser.add_argument("--dtypes", default="bfloat16,float16,int8")
    args = parser.parse_args()
    files = photos()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            model = export_model(tmp, variant)
            log = os.path.join(tmp, "server.log")
            reference = serve_and_embed(model, "float32", log, files)
            for dtype in args.dtypes.split(","):
                served = export_model(tmp, variant, dtype="int8") if dtype == "int8" else model
                test = serve_and_embed(served, dtype, log, files)
                for size in SIZES:
                    stats = compare(reference[size], test[size])
                    rows.append((variant, dtype, size, stats))
    print(f"{len(files)} photos ({PHOTO_GLOB}); cosine to float32, min / mean\n")
    print("| model | compute dtype | input | CLS | pooled | patch tokens |")
    print("|---|---|---|---|---|---|")
    for variant, dtype, size, stats in rows:
        cells = " | ".join(f"{stats[n][0]:.5f} / {stats[n][1]:.5f}" for n in OUTPUTS)
        print(f"| {variant} (random) | {dtype} | {size} | {cells} |")


if __name__ == "__main__":
    main()
