"""Benchmark peer runtime: a Seldon MLServer (1.7.1) `MLModel` serving the same TorchScript file.

Loaded by MLServer from the model-settings.json that mlserver_server.py writes (never imported by
the repository's own .venv: it needs `.venv-mlserver`, see README.md in this folder):

    {"name": "NAME", "implementation": "mlserver_runtime.DinoRuntime",
     "max_batch_size": 8, "max_batch_time": 0.005,
     "parameters": {"uri": "/abs/MODEL.pt", "extra": {"threads": 2, "device": "cpu"}}}

Contract (the Open Inference Protocol, as dinov3-server's KServe front door speaks it):
  inputs   IMAGE  BYTES [N]         encoded files (JPEG, PNG, ... through PIL); in JSON a base64
                                    string per element (bytes elements are taken as they are)
           PIXELS UINT8 [N, H, W, 3] RGB pixels (all N the same size)
           exactly one of them per request.
  outputs  CLS, POOLED FP32 [N, D]  (the default pair when the request names no outputs),
           PATCH_TOKENS FP32 [N, H/16*W/16, D], REGISTERS FP32 [N, R, D]; only those requested.
Preprocessing is model_io.py's (the server's, DESIGN.md section 5) at the model's default input
size: decode to uint8 RGB (PIL, EXIF orientation applied), * 1/255, bilinear antialiased resize
when the size differs, (x - mean) / std. One forward runs over all the images of the (adaptively
batched) request. A bad request raises InferenceError (HTTP 400 / gRPC INVALID_ARGUMENT);
MLServer's adaptive batching merges requests before predict(), so a bad request fails the other
requests of its batch too (MLServer's batching semantics).

MLServer's adaptive batching (max_batch_size / max_batch_time) merges requests per input name and
concatenates their data along the first dimension, taking H and W of PIXELS from the first
request: a batch whose PIXELS requests differ in size, or that mixes IMAGE and PIXELS requests,
is rejected here rather than answered wrongly.
"""
import base64
import binascii
import ctypes
import io
import os
import signal
import sys

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

OUTPUTS = {"CLS": "cls", "POOLED": "pooled", "PATCH_TOKENS": "patch_tokens",
           "REGISTERS": "registers"}
DEFAULT_OUTPUTS = ("CLS", "POOLED")


def die_with_parent() -> None:
    """Asks the kernel to SIGKILL this (worker) process when its parent exits (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def decode_file(index: int, element) -> np.ndarray:
    """HxWx3 uint8 RGB of one IMAGE element (bytes, or a base64 string from JSON)."""
    if isinstance(element, str):
        try:
            element = base64.b64decode(element, validate=True)
        except (binascii.Error, ValueError):
            raise InferenceError(f"IMAGE[{index}]: a JSON string must be base64") from None
    try:
        with Image.open(io.BytesIO(element)) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except Exception as e:  # PIL raises many types for bad files
        raise InferenceError(f"IMAGE[{index}]: cannot decode image: {e}") from None


def tensor_data(request_input) -> list:
    data = getattr(request_input.data, "root", request_input.data)
    if isinstance(data, (bytes, str)):  # a lone element outside a list
        return [data]
    return list(data)


class DinoRuntime(MLModel):
    async def load(self) -> bool:
        import torch  # only in the inference worker: MLServer's main process stays light
        from model_io import DinoModel

        die_with_parent()
        params = self.settings.parameters
        extra = (params.extra if params else None) or {}
        if int(extra.get("threads", 0)) > 0:
            torch.set_num_threads(int(extra["threads"]))
        self._model = DinoModel(params.uri, extra.get("device", "cpu"))
        self._torch = torch
        return True

    def _images(self, payload: InferenceRequest) -> list:
        """The request's images as HxWx3 uint8 RGB arrays."""
        by_name = {i.name: i for i in payload.inputs}
        unknown = set(by_name) - {"IMAGE", "PIXELS"}
        if unknown or len(by_name) != 1:
            raise InferenceError(f"expected exactly one input, IMAGE (BYTES) or PIXELS (UINT8); "
                                 f"got {sorted(by_name)}")
        if "IMAGE" in by_name:
            image = by_name["IMAGE"]
            if image.datatype != "BYTES" or len(image.shape) != 1:
                raise InferenceError(f"IMAGE must be BYTES [N], got {image.datatype} "
                                     f"{list(image.shape)}")
            elements = tensor_data(image)
            if len(elements) != image.shape[0]:
                raise InferenceError(f"IMAGE has shape {list(image.shape)} but "
                                     f"{len(elements)} elements")
            return [decode_file(i, e) for i, e in enumerate(elements)]
        pixels = by_name["PIXELS"]
        shape = [int(v) for v in pixels.shape]
        if pixels.datatype != "UINT8" or len(shape) != 4 or shape[3] != 3 or min(shape) <= 0:
            raise InferenceError(f"PIXELS must be UINT8 [N, H, W, 3], got {pixels.datatype} "
                                 f"{shape}")
        data = tensor_data(pixels)
        if len(data) != int(np.prod(shape)):
            raise InferenceError(f"PIXELS has shape {shape} but {len(data)} values (requests "
                                 "of different sizes in one batch?)")
        array = np.asarray(data, dtype=np.uint8).reshape(shape)
        return list(array)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        images = self._images(payload)
        names = [o.name for o in payload.outputs] if payload.outputs else list(DEFAULT_OUTPUTS)
        bad = [n for n in names if n not in OUTPUTS]
        if bad:
            raise InferenceError(f"unknown outputs {bad}; known: {sorted(OUTPUTS)}")
        model = self._model
        x = model.preprocess(images, *model.default_size)
        out = model.forward(x)  # one forward over the whole (batched) request
        return InferenceResponse(
            model_name=self.name, model_version=self.version, id=payload.id,
            outputs=[NumpyCodec.encode_output(n, out[OUTPUTS[n]].cpu().numpy()) for n in names])
