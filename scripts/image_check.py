"""The host-side checks of scripts/image-check.sh (run with .venv/bin/python):

  python scripts/image_check.py embed-equal ADDR_A ADDR_B
      Embeds the same image through both servers (CLS, pooled, registers, patch tokens, float32)
      and fails unless every value agrees within 1e-5.
  python scripts/image_check.py hf-folder DIR
      Writes a random Hugging Face-layout DINOv3 folder (config.json + model.safetensors).
  python scripts/image_check.py exports-equal A.pt B.pt
      Fails unless both exports carry the same weights hash and give the same outputs (1e-5).
"""
import io
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5


def test_image() -> bytes:
    """A 320x240 PNG with structure (gradients and a disc), the same on every run."""
    from PIL import Image
    y, x = np.mgrid[0:240, 0:320]
    disc = ((x - 200) ** 2 + (y - 100) ** 2 < 60 ** 2) * 120
    rgb = np.stack([x * 255 // 319, y * 255 // 239, (x + y + disc) % 256], axis=-1)
    out = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def embed_equal(address_a: str, address_b: str) -> None:
    sys.path.insert(0, str(ROOT / "client" / "python"))
    from dinov3_client import EmbeddingClient
    outputs = ("cls", "pooled", "registers", "patch_tokens")
    image = test_image()
    results = []
    for address in (address_a, address_b):
        with EmbeddingClient(address, timeout=120) as client:
            results.append(client.embed([image], outputs=outputs)[0])
    for name in outputs:
        a, b = getattr(results[0], name), getattr(results[1], name)
        assert a.shape == b.shape, f"{name}: shapes {a.shape} and {b.shape} differ"
        diff = float(np.max(np.abs(a - b)))
        print(f"image-check:   {name} {list(a.shape)}: max |difference| {diff:.2e}")
        assert diff <= TOLERANCE, f"{name} differs by {diff} (> {TOLERANCE})"


def hf_folder(folder: str) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit" / "model")]
    from hf_reference import random_hf_model
    random_hf_model("vits16", seed=7, depth=2).save_pretrained(folder)


def exports_equal(path_a: str, path_b: str) -> None:
    import torch
    metadata, outputs = [], []
    pixels = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(3))
    for path in (path_a, path_b):
        files = {"dinov3.json": ""}
        module = torch.jit.load(path, _extra_files=files)
        metadata.append(json.loads(files["dinov3.json"]))
        with torch.no_grad():
            outputs.append(module(pixels))
    hashes = [m["weights_sha256"] for m in metadata]
    assert hashes[0] == hashes[1], f"weights hashes differ: {hashes}"
    for name, a in outputs[0].items():
        diff = float((a - outputs[1][name]).abs().max())
        print(f"image-check:   {name} {list(a.shape)}: max |difference| {diff:.2e}")
        assert diff <= TOLERANCE, f"{name} differs by {diff} (> {TOLERANCE})"


if __name__ == "__main__":
    commands = {"embed-equal": embed_equal, "hf-folder": hf_folder, "exports-equal": exports_equal}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
