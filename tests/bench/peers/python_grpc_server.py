"""Benchmark peer: the plain Python gRPC server a user would write in an afternoon.

Serves dinov3.v1.EmbeddingService/Embed (the other RPCs answer UNIMPLEMENTED) from the same
TorchScript file as dinov3-server, with grpcio's thread pool and no batching: every call runs
its own forward pass over its own images, concurrently with the other calls.

    .venv/bin/python tests/bench/peers/python_grpc_server.py --model models/m.pt \
        [--port 0] [--host 127.0.0.1] [--device cpu] [--workers 8] [--threads N]

Prints exactly one line `READY <port>` on stdout once it serves; stops on SIGTERM / SIGINT.
Request semantics follow the proto: raw RGB8/BGR8/GRAY8/RGBA8 or encoded images (PIL), outputs
(empty = CLS + POOLED), dtype float32/float16/bfloat16, l2_normalize, RESIZE_FIXED with
preprocess.height/width (0 = model default), request_id and image ids echoed. Bad input gives
INVALID_ARGUMENT.
"""
import argparse
import io
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import torch
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path[:0] = [HERE, os.path.join(ROOT, "client", "python")]
from dinov3_client import embedding_pb2 as pb2  # noqa: E402
from dinov3_client import embedding_pb2_grpc as pb2_grpc  # noqa: E402
from model_io import DinoModel, l2_normalize, tensor_bytes  # noqa: E402

MAX_MESSAGE_BYTES = 64 << 20
CHANNELS = {pb2.RGB8: 3, pb2.BGR8: 3, pb2.GRAY8: 1, pb2.RGBA8: 4}
DTYPES = {pb2.FLOAT32: torch.float32, pb2.FLOAT16: torch.float16, pb2.BFLOAT16: torch.bfloat16}
OUTPUT_NAMES = {pb2.CLS: "cls", pb2.POOLED: "pooled", pb2.PATCH_TOKENS: "patch_tokens",
                pb2.REGISTERS: "registers"}


def decode_raw(raw) -> np.ndarray:
    channels = CHANNELS.get(raw.format)
    if channels is None:
        raise ValueError(f"raw pixel format {raw.format} is not supported")
    if raw.width == 0 or raw.height == 0:
        raise ValueError(f"raw image size {raw.width}x{raw.height} is not positive")
    expected = raw.width * raw.height * channels
    if len(raw.data) != expected:
        raise ValueError(f"raw data is {len(raw.data)} bytes, expected {expected}")
    pixels = np.frombuffer(raw.data, np.uint8).reshape(raw.height, raw.width, channels)
    if raw.format == pb2.BGR8:
        return pixels[:, :, ::-1]
    if raw.format == pb2.GRAY8:
        return np.repeat(pixels, 3, axis=2)
    return pixels[:, :, :3]


def decode_encoded(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Exception as e:  # PIL raises many types for bad files
        raise ValueError(f"cannot decode image: {e}") from None


def decode_image(index: int, image) -> np.ndarray:
    """HxWx3 uint8 RGB of one request image; ValueError naming the image index."""
    try:
        if image.HasField("raw"):
            return decode_raw(image.raw)
        if image.HasField("encoded"):
            return decode_encoded(image.encoded)
        raise ValueError("no image data")
    except ValueError as e:
        raise ValueError(f"images[{index}]: {e}") from None


def parse_options(request, model: DinoModel):
    """(outputs, torch dtype, height, width) of a request; ValueError when one is bad."""
    if request.dtype not in DTYPES:
        raise ValueError(f"dtype {request.dtype} is not supported")
    outputs = [OUTPUT_NAMES.get(o) for o in request.outputs] or ["cls", "pooled"]
    if None in outputs:
        raise ValueError(f"outputs {list(request.outputs)}: unknown or unspecified output")
    pre = request.preprocess
    if pre.mode != pb2.RESIZE_FIXED:
        raise ValueError("preprocess: only RESIZE_FIXED is supported")
    height, width = pre.height or model.default_size[0], pre.width or model.default_size[1]
    model.check_size(height, width)
    return outputs, DTYPES[request.dtype], height, width


def to_tensor(x: torch.Tensor, dtype: torch.dtype, wire_dtype: int) -> "pb2.Tensor":
    return pb2.Tensor(dtype=wire_dtype, shape=list(x.shape), data=tensor_bytes(x, dtype))


def build_embedding(out, i, image_id, outputs, request, dtype, grid):
    emb = pb2.Embedding(id=image_id, grid_height=grid[0], grid_width=grid[1])
    for name in outputs:
        x = out[name][i]
        if request.l2_normalize and name != "registers":
            x = l2_normalize(x)
        getattr(emb, name).CopyFrom(to_tensor(x, dtype, request.dtype))
    return emb


class EmbeddingService(pb2_grpc.EmbeddingServiceServicer):
    def __init__(self, model: DinoModel):
        self.model = model
        self.model_name = f"{model.meta['variant']}@{model.meta['weights_sha256'][:12]}"

    def Embed(self, request, context):
        try:
            if not request.images:
                raise ValueError("images: the request has no images")
            outputs, dtype, height, width = parse_options(request, self.model)
            images = [decode_image(i, im) for i, im in enumerate(request.images)]
        except ValueError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        start = time.perf_counter()
        out = self.model.forward(self.model.preprocess(images, height, width))
        grid = (height // self.model.patch_size, width // self.model.patch_size)
        embeddings = [build_embedding(out, i, im.id, outputs, request, dtype, grid)
                      for i, im in enumerate(request.images)]
        timing = pb2.Timing(inference_seconds=time.perf_counter() - start,
                            batch_size=len(images))
        return pb2.EmbedResponse(embeddings=embeddings, request_id=request.request_id,
                                 model=self.model_name, timing=timing)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="exported TorchScript file")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--workers", type=int, default=8, help="gRPC thread pool size")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0 = torch default)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = DinoModel(args.model, args.device)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    server = grpc.server(ThreadPoolExecutor(max_workers=args.workers), options=options)
    pb2_grpc.add_EmbeddingServiceServicer_to_server(EmbeddingService(model), server)
    port = server.add_insecure_port(f"{args.host}:{args.port}")
    if port == 0:
        sys.exit(f"cannot listen on {args.host}:{args.port}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"READY {port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(grace=2).wait()


if __name__ == "__main__":
    main()
