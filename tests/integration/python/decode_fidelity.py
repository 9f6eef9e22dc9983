"""How close the fast decode (Preprocess.decode = DECODE_FAST: a JPEG decoded at 1/2, 1/4 or 1/8
scale in libjpeg's DCT domain, then resized as usual) comes to the exact decode.

One server embeds every photo of photo_set.py twice, exact and fast, and the cosine of every
output to its exact counterpart is taken: CLS, pooled (mean of the patch tokens) and each patch
token. test_fast_decode.py asserts the bounds README "Exactness" documents; run as a script, this
prints that table and the decode scale each photo got:

  .venv/bin/python tests/integration/python/decode_fidelity.py [--variants vits16,vitb16]

Models are random (UNTRAINED) full-depth exports: real weights cannot be downloaded here.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from tests.integration.python import photo_set  # noqa: E402
from tests.integration.python.dtype_fidelity import (OUTPUTS, compare, embed_all,  # noqa: E402
                                                     export_model)
from tests.integration.python.server_process import start_server, stop_server  # noqa: E402

# 224x224 (the model's default input, the Hugging Face processor) and the official eval recipe
# (shorter side 256, centre crop 224, bicubic), where the fast decode applies to nearly every
# photo; with the aspect kept at 1024 patches (~640x400) it applies to the photos of at least
# 2x that size.
SIZES = {"224x224": {},
         "centre crop 224": {"mode": "shorter_side_center_crop"},
         "keep-aspect 1024 patches": {"mode": "keep_aspect", "max_patches": 1024}}


def exact_and_fast(client, files, sizes=SIZES):
    """{size: (exact embeddings, fast embeddings)} from one server."""
    out = {}
    for size, preprocess in sizes.items():
        exact = embed_all(client, files, dict(preprocess, decode="exact"))
        fast = embed_all(client, files, dict(preprocess, decode="fast"))
        out[size] = (exact, fast)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="vits16,vitb16")
    args = parser.parse_args()
    files = photo_set.photos()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            model = export_model(tmp, variant)
            proc, _, client = start_server(model, os.path.join(tmp, "server.log"))
            try:
                for size, (exact, fast) in exact_and_fast(client, files).items():
                    rows.append((variant, size, compare(exact, fast)))
            finally:
                stop_server(proc, client)
    print(f"{len(files)} photos (photo_set.py); cosine of the fast decode to the exact one, "
          "min / mean\n")
    print("| model | input | CLS | pooled | patch tokens |")
    print("|---|---|---|---|---|")
    for variant, size, stats in rows:
        cells = " | ".join(f"{stats[n][0]:.5f} / {stats[n][1]:.5f}" for n in OUTPUTS)
        print(f"| {variant} (random) | {size} | {cells} |")


if __name__ == "__main__":
    main()
