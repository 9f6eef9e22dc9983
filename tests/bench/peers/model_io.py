"""Model loading, preprocessing and forward shared by the benchmark's peer servers.

Both peers (python_grpc_server.py, litserve_server.py) serve the same exported TorchScript file
as dinov3-server, with the same preprocessing (DESIGN.md section 5, server/engine/image_tensor.cc):
uint8 RGB -> float32 * (1/255) -> bilinear antialiased resize (align_corners=False; only when the
size differs) -> (x - mean) / std, with mean/std from the archive's dinov3.json.

    model = DinoModel("models/dinov3-vits16-untrained.pt", "cpu")
    x = model.preprocess([hwc_uint8_rgb], 224, 224)   # [1, 3, 224, 224] float32
    out = model.forward(x)  # cls [B,D], pooled [B,D], patch_tokens [B,N,D], registers [B,R,D]
"""
import json
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F

METADATA_FILE = "dinov3.json"


class DinoModel:
    """The exported module (eval mode) on one device, with its metadata. Thread-safe."""

    def __init__(self, path: str, device: str = "cpu"):
        extra = {METADATA_FILE: ""}
        self.device = torch.device(device)
        self.module = torch.jit.load(path, map_location=self.device, _extra_files=extra)
        self.module.eval()
        self.meta = json.loads(extra[METADATA_FILE])
        self.patch_size = int(self.meta["patch_size"])
        self.default_size = tuple(int(v) for v in self.meta["default_input_size"])  # (H, W)
        self.mean = self._channels(self.meta["image_mean"])
        self.std = self._channels(self.meta["image_std"])

    def _channels(self, values) -> torch.Tensor:
        return torch.tensor([float(v) for v in values], device=self.device).view(3, 1, 1)

    def check_size(self, height: int, width: int) -> None:
        """Raises ValueError unless height and width are positive multiples of the patch size."""
        p = self.patch_size
        if height <= 0 or width <= 0 or height % p or width % p:
            raise ValueError(f"input size {height}x{width} must be positive multiples of {p}")

    def preprocess(self, images: Sequence[np.ndarray], height: int, width: int) -> torch.Tensor:
        """[B,3,height,width] normalised float32 from uint8 HxWx3 RGB arrays (any sizes)."""
        self.check_size(height, width)
        if len({im.shape for im in images}) > 1:  # different sizes: one by one
            return torch.cat([self.preprocess([im], height, width) for im in images])
        pixels = torch.from_numpy(np.stack([np.ascontiguousarray(im) for im in images]))
        x = pixels.to(self.device).permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
        if tuple(x.shape[2:]) != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                              antialias=True)
        return ((x - self.mean) / self.std).contiguous()

    def forward(self, pixel_values: torch.Tensor) -> Dict[str, torch.Tensor]:
        """One forward: float32 cls [B,D], pooled [B,D], patch_tokens [B,N,D], registers [B,R,D].

        pooled is the mean of the float32 patch tokens, as the server computes it.
        """
        with torch.inference_mode():
            out = self.module(pixel_values)
            patches = out["patch_tokens"].float()
            return {"cls": out["cls"].float(), "pooled": patches.mean(1),
                    "patch_tokens": patches, "registers": out["registers"].float()}


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """x / ||x|| over the last dimension (norm clamped at 1e-12, as the server does)."""
    return x / x.norm(2, dim=-1, keepdim=True).clamp_min(1e-12)


def tensor_bytes(x: torch.Tensor, dtype: torch.dtype) -> bytes:
    """Row-major little-endian bytes of `x` cast to dtype (bfloat16: the top half of float32)."""
    return x.to("cpu", dtype).contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
