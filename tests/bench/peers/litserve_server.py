"""Benchmark peer: LitServe (0.2.19) with its dynamic batching, serving the same TorchScript file.

    .venv/bin/python tests/bench/peers/litserve_server.py --model models/m.pt [--port 8000] \
        [--host 127.0.0.1] [--device cpu] [--max-batch-size 8] [--batch-timeout 0.005] \
        [--threads N] [--api-servers N]

HTTP `POST /predict` with a JSON body (README.md in this folder has the full contract):
  {"image": "<base64>", "encoding": "raw" | "file", "width": W, "height": H,
   "outputs": ["cls", "pooled", "patch_tokens", "registers"], "dtype": "float32",
   "resize": [H, W]}
answers {"cls": {"dtype": "float32", "shape": [D], "data": "<base64 little-endian>"}, ...}.
One inference worker process (workers_per_device=1) collects up to --max-batch-size requests
(waiting at most --batch-timeout s), preprocesses them and runs one forward per target size.

Prints exactly one line `READY <port>` on stdout once GET /health answers 200; everything else
(LitServe's and uvicorn's logs, also from its child processes) goes to stderr. --port 0 picks a
free port first (LitServe itself refuses 0). SIGTERM / SIGINT shut LitServe down with its own
graceful path (uvicorn, the inference worker and the multiprocessing manager are terminated);
every child also gets SIGKILL from the kernel if this process dies first (PR_SET_PDEATHSIG).
"""
import argparse
import base64
import ctypes
import io
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import urllib.request

import litserve as ls
import numpy as np
import torch
from fastapi import HTTPException
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model_io import DinoModel, tensor_bytes  # noqa: E402

OUTPUTS = ("cls", "pooled", "patch_tokens", "registers")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def die_with_parent() -> None:
    """Asks the kernel to SIGKILL this process when its parent exits (Linux only).

    Also gives SIGTERM back its default action (a forked child inherits main()'s handler).
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def bad_request(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def decode_pixels(body: dict) -> np.ndarray:
    """HxWx3 uint8 RGB of the request's image (raw RGB8 or an encoded file)."""
    try:
        data = base64.b64decode(body["image"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise bad_request("'image' must be base64 data") from None
    if body.get("encoding", "file") == "raw":
        width, height = int(body.get("width", 0)), int(body.get("height", 0))
        if width <= 0 or height <= 0 or len(data) != width * height * 3:
            raise bad_request(f"raw image needs width*height*3 bytes: {width}x{height}, "
                              f"{len(data)} bytes")
        return np.frombuffer(data, np.uint8).reshape(height, width, 3)
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Exception as e:  # PIL raises many types for bad files
        raise bad_request(f"cannot decode image: {e}") from None


class DinoAPI(ls.LitAPI):
    def __init__(self, model_path: str, threads: int, **kwargs):
        super().__init__(**kwargs)
        self.model_path, self.threads = model_path, threads

    def setup(self, device):
        die_with_parent()
        if self.threads > 0:
            torch.set_num_threads(self.threads)
        self.model = DinoModel(self.model_path, device)

    def decode_request(self, request):
        if not isinstance(request, dict):
            raise bad_request("the body must be a JSON object")
        outputs = request.get("outputs") or ["cls", "pooled"]
        dtype = request.get("dtype", "float32")
        size = tuple(int(v) for v in request.get("resize") or self.model.default_size)
        if any(o not in OUTPUTS for o in outputs) or dtype not in DTYPES or len(size) != 2:
            raise bad_request(f"bad outputs {outputs}, dtype {dtype!r} or resize {list(size)}")
        try:
            self.model.check_size(*size)
        except ValueError as e:
            raise bad_request(str(e)) from None
        return {"image": decode_pixels(request), "outputs": outputs, "dtype": dtype,
                "size": size}

    def batch(self, inputs):
        """Groups the requests by target size and preprocesses each group into one tensor."""
        groups = {}
        for i, item in enumerate(inputs):
            groups.setdefault(item["size"], []).append(i)
        return {"items": inputs,
                "groups": [(idx, self.model.preprocess([inputs[i]["image"] for i in idx], *size))
                           for size, idx in groups.items()]}

    def predict(self, x):
        if "groups" not in x:  # --max-batch-size 1: LitServe skips batch() and unbatch()
            return self.predict(self.batch([x]))[0]
        results = [None] * len(x["items"])
        for indices, pixel_values in x["groups"]:
            out = self.model.forward(pixel_values)  # one forward for the whole group
            for row, i in enumerate(indices):
                item = x["items"][i]
                results[i] = (item["dtype"], {name: out[name][row] for name in item["outputs"]})
        return results

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        dtype, tensors = output
        return {name: {"dtype": dtype, "shape": list(t.shape),
                       "data": base64.b64encode(tensor_bytes(t, DTYPES[dtype])).decode("ascii")}
                for name, t in tensors.items()}


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def announce_when_healthy(port: int, out) -> None:
    """Polls GET /health until it answers 200, then writes `READY <port>` to `out`."""
    url = f"http://127.0.0.1:{port}/health"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        time.sleep(0.1)
    out.write(f"READY {port}\n")
    out.flush()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="exported TorchScript file")
    parser.add_argument("--port", type=int, default=8000, help="0 = pick a free port")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "0.0.0.0", "::"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (one device)")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout", type=float, default=0.005, help="seconds")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0 = torch default)")
    parser.add_argument("--api-servers", type=int, default=None,
                        help="uvicorn processes (default: LitServe's, one per inference worker)")
    return parser.parse_args(argv)


def stdout_for_ready():
    """A private handle on stdout; fd 1 (inherited by LitServe's children) then points at stderr."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return out


def raise_keyboard_interrupt(*_):
    raise KeyboardInterrupt  # LitServer.run() shuts down gracefully on it


def main(argv=None):
    args = parse_args(argv)
    ready_out = stdout_for_ready()
    port = args.port or free_port(args.host)
    api = DinoAPI(args.model, args.threads, max_batch_size=args.max_batch_size,
                  batch_timeout=args.batch_timeout)
    accelerator, _, index = args.device.partition(":")
    devices = [int(index)] if index else 1
    server = ls.LitServer(api, accelerator=accelerator, devices=devices, workers_per_device=1)
    server.uvicorn_graceful_timeout = 5  # seconds to drain on shutdown (LitServe's default: 30)
    os.register_at_fork(after_in_child=die_with_parent)  # uvicorn and manager processes
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    threading.Thread(target=announce_when_healthy, args=(port, ready_out), daemon=True).start()
    try:
        server.run(host=args.host, port=port, num_api_servers=args.api_servers,
                   log_level="warning", generate_client_file=False, access_log=False)
    except KeyboardInterrupt:
        pass  # a signal before LitServe's own handling started
    finally:
        for child in multiprocessing.active_children():
            child.kill()


if __name__ == "__main__":
    main()
