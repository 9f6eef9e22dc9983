"""Parity through Meta's .pth layout: the reference weights are rewritten into the official key
layout (the inverse of the mapping in DESIGN.md section 5, written here independently of the
loader), with bf16-rounded RoPE periods, a bias_mask and junk in the masked K bias, then exported
with --meta-checkpoint and compared with the reference run on the same bf16-rounded periods;
forward_layers' block outputs likewise (against the reference's hidden states).

Tolerances as for the Hugging Face path: max abs <= 1e-4, per-token cosine >= 0.99999.
"""
import math

import pytest
import torch

from tests.unit.model.hf_reference import (
    TEST_DEPTH, check_layers, export, per_token_cosine, random_hf_model, reference_layers,
    reference_tokens)

MAX_ABS = 1e-4
MIN_COSINE = 0.99999


def to_meta_layout(hf: dict, dim: int, depth: int, gated: bool, periods: torch.Tensor) -> dict:
    meta = {
        "cls_token": hf["embeddings.cls_token"],
        "storage_tokens": hf["embeddings.register_tokens"],
        "mask_token": hf["embeddings.mask_token"].reshape(1, dim),
        "patch_embed.proj.weight": hf["embeddings.patch_embeddings.weight"],
        "patch_embed.proj.bias": hf["embeddings.patch_embeddings.bias"],
        "norm.weight": hf["norm.weight"],
        "norm.bias": hf["norm.bias"],
        "rope_embed.periods": periods,
        "local_cls_norm.weight": torch.ones(dim),  # training-only, must be ignored
        "local_cls_norm.bias": torch.zeros(dim),
    }
    ffn = ({"gate_proj": "w1", "up_proj": "w2", "down_proj": "w3"} if gated
           else {"up_proj": "fc1", "down_proj": "fc2"})
    for n in range(depth):
        h, m = f"layer.{n}.", f"blocks.{n}."
        a = h + "attention."
        meta[m + "attn.qkv.weight"] = torch.cat(
            [hf[a + "q_proj.weight"], hf[a + "k_proj.weight"], hf[a + "v_proj.weight"]])
        junk = torch.full((dim,), float("nan"))  # what an unmasked K bias may hold
        meta[m + "attn.qkv.bias"] = torch.cat([hf[a + "q_proj.bias"], junk, hf[a + "v_proj.bias"]])
        meta[m + "attn.qkv.bias_mask"] = torch.cat(
            [torch.ones(dim), torch.zeros(dim), torch.ones(dim)])
        meta[m + "attn.proj.weight"] = hf[a + "o_proj.weight"]
        meta[m + "attn.proj.bias"] = hf[a + "o_proj.bias"]
        for i in (1, 2):
            meta[m + f"ls{i}.gamma"] = hf[h + f"layer_scale{i}.lambda1"]
            meta[m + f"norm{i}.weight"] = hf[h + f"norm{i}.weight"]
            meta[m + f"norm{i}.bias"] = hf[h + f"norm{i}.bias"]
        for hf_name, meta_name in ffn.items():
            for leaf in ("weight", "bias"):
                meta[m + f"mlp.{meta_name}.{leaf}"] = hf[h + f"mlp.{hf_name}.{leaf}"]
    return meta


def export_meta(variant: str, tmp_path, depth: int = TEST_DEPTH):
    """A random reference written as a Meta .pth (bf16 periods) and exported with
    --meta-checkpoint. Returns (reference set to the same bf16 periods, scripted module)."""
    reference = random_hf_model(variant, seed=11, depth=depth)
    cfg = reference.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    exact = 100.0 ** (4 * torch.arange(head_dim // 4, dtype=torch.float64) / head_dim)
    periods = exact.to(torch.bfloat16)  # as stored in the official .pth files
    assert (periods.double() - exact).abs().max() > 1e-3  # the rounding is not negligible
    hf_state = {k.removeprefix("model."): v for k, v in reference.state_dict().items()}
    meta = to_meta_layout(hf_state, cfg.hidden_size, cfg.num_hidden_layers,
                          cfg.use_gated_mlp, periods)
    pth = tmp_path / f"dinov3_{variant}_pretrain_lvd1689m-0000.pth"
    torch.save(meta, pth)
    scripted = torch.jit.load(export(str(tmp_path), "meta.pt", "--meta-checkpoint", str(pth)))
    reference.rope_embeddings.inv_freq = 1.0 / periods.float()
    return reference, scripted


@pytest.mark.parametrize("variant", ["vits16", "vits16plus"])
def test_meta_checkpoint_matches_reference_with_stored_periods(variant, tmp_path):
    reference, scripted = export_meta(variant, tmp_path)
    for height, width in [(224, 224), (160, 320)]:
        pixels = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(3))
        expected = reference_tokens(reference, pixels)
        with torch.inference_mode():
            got = scripted(pixels)
        for key in ("cls", "registers", "patch_tokens"):
            diff = (got[key] - expected[key]).abs().max().item()
            print(f"meta {variant} {height}x{width} {key}: max|d|={diff:.2e}")
            assert math.isfinite(diff) and diff <= MAX_ABS, f"{key}: {diff}"
            assert per_token_cosine(got[key], expected[key]).min().item() >= MIN_COSINE


@pytest.mark.parametrize("variant", ["vits16", "vits16plus"])
def test_meta_checkpoint_forward_layers_match_reference(variant, tmp_path):
    """forward_layers of a Meta .pth export against the same bf16-period reference, as strict
    as forward: block i = hidden_states[i + 1], model.norm applied for norm=True."""
    reference, scripted = export_meta(variant, tmp_path, depth=3)
    layers = [2, 0]
    pixels = torch.randn(2, 3, 160, 320, generator=torch.Generator().manual_seed(4))
    for norm in (True, False):
        expected = reference_layers(reference, pixels, layers, norm)
        with torch.inference_mode():
            got = scripted.forward_layers(pixels, layers, norm)
        check_layers(got, expected, layers, f"meta {variant} 160x320 b=2 norm={norm}",
                     MAX_ABS, MIN_COSINE)


def test_bf16_periods_change_the_output(tmp_path):
    """The periods matter: exact and bf16-rounded periods give clearly different outputs."""
    reference = random_hf_model("vits16", seed=5)
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    exact = reference_tokens(reference, pixels)["patch_tokens"]
    reference.rope_embeddings.inv_freq = 1.0 / reference.rope_embeddings.inv_freq.reciprocal().to(
        torch.bfloat16).float()
    rounded = reference_tokens(reference, pixels)["patch_tokens"]
    assert (exact - rounded).abs().max().item() > 1e-4
