"""Reduced-precision exports: float16 and bfloat16 stay close to the float32 export.

Tolerance: cosine similarity >= 0.999 for every token against float32 (DESIGN.md section 7).
"""
import json
import zipfile

import pytest
import torch

from tests.unit.model.hf_reference import export, per_token_cosine

MIN_COSINE = 0.999


@pytest.fixture(scope="module")
def float32_export(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("fp32"))
    return export(folder, "fp32.pt", "--random", "--variant", "vits16plus", "--depth", "3")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_matches_float32(float32_export, dtype, tmp_path):
    path = export(str(tmp_path), f"{dtype}.pt", "--random", "--variant", "vits16plus",
                  "--depth", "3", "--dtype", dtype)
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("extra/dinov3.json"))
        assert json.loads(archive.read(name))["dtype"] == dtype
    low, full = torch.jit.load(path), torch.jit.load(float32_export)
    assert low.rope_embed.periods.dtype == torch.float32  # RoPE stays in float32
    pixels = torch.randn(2, 3, 160, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        got, want = low(pixels), full(pixels)
    for key in ("cls", "registers", "patch_tokens"):
        assert got[key].dtype == getattr(torch, dtype)
        cosine = per_token_cosine(got[key].float(), want[key]).min().item()
        print(f"{dtype} {key}: min cosine {cosine:.6f}")
        assert cosine >= MIN_COSINE, f"{dtype} {key}: min cosine {cosine}"
