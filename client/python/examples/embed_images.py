"""Embed image files with a running dinov3-server and print what came back.

    .venv/bin/python client/python/examples/embed_images.py cat.jpg dog.png
    .venv/bin/python client/python/examples/embed_images.py --dense --target host:50051 cat.jpg

Prints the model, each image's CLS / pooled embedding shapes and the cosine similarity of the
CLS embeddings between every pair of images (or, with --dense, each image's patch-feature grid).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dinov3_client import EmbeddingClient, EmbeddingError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", help="JPEG, PNG, WebP or BMP files")
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--dense", action="store_true", help="dense patch features (keep aspect)")
    args = parser.parse_args()
    try:
        with EmbeddingClient(args.target) as client:
            info = client.model_info()
            print(f"model {info.variant} dim {info.embed_dim} on {info.device}: "
                  f"{client.health()}")
            if args.dense:
                for path in args.images:
                    grid = client.embed_dense(path, dtype=args.dtype,
                                              preprocess={"mode": "keep_aspect"})
                    print(f"{path}: patch features {list(grid.shape)} {grid.dtype}")
                return 0
            results = client.embed(args.images, dtype=args.dtype, l2_normalize=True,
                                   ids=args.images)
    except (EmbeddingError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.id}: cls {list(r.cls.shape)}, pooled {list(r.pooled.shape)}, "
              f"grid {r.grid_height}x{r.grid_width}")
    cls = np.stack([r.cls.astype(np.float32) for r in results])
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            print(f"cos({results[i].id}, {results[j].id}) = {float(cls[i] @ cls[j]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
