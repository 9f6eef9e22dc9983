"""What the Open Inference Protocol tests over gRPC (test_kserve_grpc.py) and REST
(test_kserve_rest.py) share: test images, and the native dinov3.v1 answer their tensors must
equal."""
import io

import numpy as np
from PIL import Image

NATIVE_DTYPE = {"FP32": "float32", "FP16": "float16", "BF16": "bfloat16"}
NATIVE_FIELD = {"CLS": "cls", "POOLED": "pooled", "PATCH_TOKENS": "patch_tokens",
                "REGISTERS": "registers"}
NATIVE_SECONDS = 300  # hang guard of one native call, not a duration


def pixels(seed, height=48, width=64):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encoded(array, fmt):
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt)
    return out.getvalue()


def native_bytes(client, images, output, dtype="FP32", **options):
    """The concatenated tensor bytes of `output` of a dinov3.v1 Embed call of `images`."""
    request = client.build_request(images, outputs=[NATIVE_FIELD[output]],
                                   dtype=NATIVE_DTYPE[dtype], **options)
    response = client.stub.Embed(request, timeout=NATIVE_SECONDS)
    return b"".join(getattr(e, NATIVE_FIELD[output]).data for e in response.embeddings)
