"""forward_layers of the exported TorchScript module: intermediate block outputs.

Reference: transformers' DINOv3ViTModel with output_hidden_states=True; block i's output is
hidden_states[i + 1], through model.norm for norm=True. Tolerances (float32) as for forward:
max abs difference <= 1e-4 and per-token cosine >= 0.99999. The exported module runs under
torch.inference_mode(), where the blocks add into the sequence in place: a block output that was
not copied before the next block ran would come out as a later block's output and fail here.
Run with -s to see the max abs differences.
"""
import pytest
import torch

from tests.unit.model.hf_reference import (
    LAYER_KEYS, check_layers, export, per_token_cosine, random_hf_model, reference_layers)

MAX_ABS = 1e-4
MIN_COSINE = 0.99999
# The bounds reduced-precision exports meet for forward (test_export_dtypes.py).
LOW_PRECISION_MIN_COSINE = {"bfloat16": 0.999, "int8": 0.99}
DEPTH = 4
VARIANTS = ["vits16", "vits16plus"]  # an Mlp and a SwiGLU architecture
SIZES = [(224, 224), (160, 320)]
LAYER_SETS = [[0, 1], [3, 0, 2]]  # the second one out of order
FINAL_KEYS = ("cls", "registers", "patch_tokens")


@pytest.fixture(scope="module", params=VARIANTS)
def exported(request, tmp_path_factory):
    model = random_hf_model(request.param, seed=13, depth=DEPTH)
    folder = tmp_path_factory.mktemp(f"hf-layers-{request.param}")
    model.save_pretrained(folder)
    path = export(str(folder), "model.pt", "--hf-dir", str(folder))
    return request.param, model, torch.jit.load(path)


def pixels_for(batch, height, width, seed=0):
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("height,width", SIZES)
def test_layers_match_reference(exported, batch, height, width):
    variant, reference, scripted = exported
    pixels = pixels_for(batch, height, width, seed=height + width)
    dim, registers = reference.config.hidden_size, reference.config.num_register_tokens
    grid = (height // 16) * (width // 16)
    for layers in LAYER_SETS:
        for norm in (True, False):
            expected = reference_layers(reference, pixels, layers, norm)
            with torch.inference_mode():
                got = scripted.forward_layers(pixels, layers, norm)
            count = len(layers)
            assert got["layer_cls"].shape == (batch, count, dim)
            assert got["layer_registers"].shape == (batch, count, registers, dim)
            assert got["layer_patch_tokens"].shape == (batch, count, grid, dim)
            for key in LAYER_KEYS:
                assert got[key].dtype == torch.float32
            check_layers(got, expected, layers,
                         f"hf {variant} {height}x{width} b={batch} norm={norm}",
                         MAX_ABS, MIN_COSINE)


@pytest.mark.parametrize("inference", [True, False])
def test_final_outputs_equal_forward(exported, inference):
    """Both the in-place (inference) and the autograd code paths."""
    _, _, scripted = exported
    pixels = pixels_for(2, 160, 320)
    mode = torch.inference_mode() if inference else torch.enable_grad()
    with mode:
        plain = scripted(pixels)
        layered = scripted.forward_layers(pixels, [2, 0], False)
    for key in FINAL_KEYS:
        assert torch.equal(layered[key], plain[key]), key


def test_last_block_normed_is_the_final_output(exported):
    """norm=True on the last block is exactly what forward returns; a raw block differs."""
    _, _, scripted = exported
    pixels = pixels_for(1, 224, 224)
    with torch.inference_mode():
        plain = scripted(pixels)
        normed = scripted.forward_layers(pixels, [DEPTH - 1], True)
        raw = scripted.forward_layers(pixels, [DEPTH - 1], False)
    for final, layer in zip(FINAL_KEYS, LAYER_KEYS):
        assert torch.equal(normed[layer][:, 0], plain[final]), layer
        assert (raw[layer][:, 0] - plain[final]).abs().max().item() > 1e-2, layer


def test_repeated_layers(exported):
    _, _, scripted = exported
    pixels = pixels_for(1, 160, 320)
    with torch.inference_mode():
        got = scripted.forward_layers(pixels, [1, 1, 0], False)
        single = scripted.forward_layers(pixels, [1], False)
    for key in LAYER_KEYS:
        assert torch.equal(got[key][:, 0], got[key][:, 1]), key
        assert torch.equal(got[key][:, 0], single[key][:, 0]), key
        assert not torch.equal(got[key][:, 0], got[key][:, 2]), key


@pytest.mark.parametrize("layers,message", [
    ([DEPTH], f"block index {DEPTH} is out of range \\[0, {DEPTH}\\)"),
    ([0, -1], "block index -1 is out of range"),
    ([], "at least one block"),
])
def test_bad_layers_raise(exported, layers, message):
    _, _, scripted = exported
    with torch.inference_mode(), pytest.raises(torch.jit.Error, match=message):
        scripted.forward_layers(pixels_for(1, 32, 32), layers, True)


@pytest.fixture(scope="module")
def random_exports(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("random-layers"))
    common = ["--random", "--variant", "vits16", "--depth", "3"]
    return {dtype: torch.jit.load(export(folder, f"{dtype}.pt", *common, "--dtype", dtype))
            for dtype in ("float32", "bfloat16", "int8")}


@pytest.mark.parametrize("dtype,torch_dtype", [("bfloat16", torch.bfloat16),
                                               ("int8", torch.float32)])
def test_reduced_precision_exports_have_forward_layers(random_exports, dtype, torch_dtype):
    """Output dtype is that of the (non-quantised) weights; each stays within its bound of
    the float32 export."""
    pixels = pixels_for(2, 160, 224, seed=5)
    with torch.inference_mode():
        full = random_exports["float32"].forward_layers(pixels, [2, 0], True)
        got = random_exports[dtype].forward_layers(pixels, [2, 0], True)
        plain = random_exports[dtype](pixels)
    for key in FINAL_KEYS:
        assert torch.equal(got[key], plain[key]), key
    for key in LAYER_KEYS:
        assert got[key].dtype == torch_dtype, key
        cosine = per_token_cosine(got[key], full[key]).min().item()
        print(f"{dtype} {key}: least cosine to float32 {cosine:.5f}")
        assert cosine >= LOW_PRECISION_MIN_COSINE[dtype], f"{dtype} {key}: {cosine}"
