"""Parity of exported TorchScript with the transformers reference, Hugging Face folder path.

Tolerances (float32): max abs difference <= 1e-4 on every output (the outputs are layer-normed,
of order 1) and cosine similarity >= 0.99999 for every token.
"""
import pytest
import torch

from tests.unit.model.hf_reference import export, per_token_cosine, random_hf_model, reference_tokens

MAX_ABS = 1e-4
MIN_COSINE = 0.99999
VARIANTS = ["vits16", "vits16plus"]  # an Mlp and a SwiGLU architecture
SIZES = [(224, 224), (160, 320), (448, 448)]


@pytest.fixture(scope="module", params=VARIANTS)
def exported(request, tmp_path_factory):
    model = random_hf_model(request.param, seed=7)
    folder = tmp_path_factory.mktemp(f"hf-{request.param}")
    model.save_pretrained(folder)
    path = export(str(folder), "model.pt", "--hf-dir", str(folder))
    return model, torch.jit.load(path)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("height,width", SIZES)
def test_matches_reference(exported, batch, height, width):
    reference, scripted = exported
    pixels = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(height))
    expected = reference_tokens(reference, pixels)
    with torch.inference_mode():
        got = scripted(pixels)
    grid = (height // 16) * (width // 16)
    assert got["patch_tokens"].shape == (batch, grid, reference.config.hidden_size)
    for key in ("cls", "registers", "patch_tokens"):
        diff = (got[key] - expected[key]).abs().max().item()
        ffn = "swiglu" if reference.config.use_gated_mlp else "mlp"
        print(f"hf {ffn} {height}x{width} b={batch} {key}: max|d|={diff:.2e}")
        assert diff <= MAX_ABS, f"{key}: max abs difference {diff}"
        assert per_token_cosine(got[key], expected[key]).min().item() >= MIN_COSINE
