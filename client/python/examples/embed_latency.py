"""Sequential Embed latency of one image against a running dinov3-server, with the server's own
split (queue / decode / inference) from the response timing. A measurement, not a test.

    .venv/bin/python client/python/examples/embed_latency.py photo.jpg --calls 100
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dinov3_client import EmbeddingClient  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="JPEG, PNG, WebP or BMP file")
    parser.add_argument("--target", default="localhost:50051")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    with open(args.image, "rb") as f:
        image = f.read()
    with EmbeddingClient(args.target) as client:
        request = client.build_request([image])
        for _ in range(args.warmup):
            client.stub.Embed(request)
        rows = []
        for _ in range(args.calls):
            start = time.perf_counter()
            timing = client.stub.Embed(request).timing
            rows.append((time.perf_counter() - start, timing.queue_seconds,
                         timing.preprocess_seconds, timing.inference_seconds))
    ms = np.array(rows) * 1000
    p50 = np.median(ms, axis=0)
    print(f"{args.calls} sequential calls: p50 {p50[0]:.1f} ms, p99 "
          f"{np.percentile(ms[:, 0], 99):.1f} ms end to end; server p50: queue {p50[1]:.2f} ms, "
          f"decode {p50[2]:.2f} ms, inference {p50[3]:.1f} ms; outside inference "
          f"{np.median(ms[:, 0] - ms[:, 3]):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
