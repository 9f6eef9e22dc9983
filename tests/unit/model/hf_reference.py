"""Shared helpers for the model tests: random Hugging Face reference models and exports.

The reference is transformers' DINOv3ViTModel (the pinned version). Its parameters are
perturbed after construction so that every tensor (biases, LayerScale, norms, registers) carries
information: a mapping mistake anywhere changes the output.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, List

import torch
from transformers import DINOv3ViTConfig, DINOv3ViTModel

from model import export as export_cli
from model.dinov3.config import ArchConfig, preset

LAYER_KEYS = ("layer_cls", "layer_registers", "layer_patch_tokens")  # of forward_layers

# Reduced-depth stand-ins for the released architectures (same widths, heads, FFN kind).
TEST_DEPTH = 2


def hf_config_for(config: ArchConfig) -> DINOv3ViTConfig:
    """The transformers config of an ArchConfig (the inverse of checkpoints.hf_arch_config)."""
    return DINOv3ViTConfig(
        hidden_size=config.embed_dim, num_hidden_layers=config.depth,
        num_attention_heads=config.num_heads, intermediate_size=config.ffn_hidden,
        use_gated_mlp=config.ffn == "swiglu",
        hidden_act="silu" if config.ffn == "swiglu" else "gelu",
        query_bias=config.qkv_bias, value_bias=config.qkv_bias, key_bias=False,
        num_register_tokens=config.num_registers, patch_size=config.patch_size)


def random_hf_model(variant: str, seed: int, depth: int = TEST_DEPTH) -> DINOv3ViTModel:
    config = dataclasses.replace(preset(variant), depth=depth)
    torch.manual_seed(seed)
    model = DINOv3ViTModel(hf_config_for(config)).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lambda1"):
                param.copy_(0.2 + torch.rand(param.shape, generator=gen))
            else:
                param.add_(0.05 * torch.randn(param.shape, generator=gen))
    return model


def export(tmp_dir: str, name: str, *args: str) -> str:
    """Runs the export CLI in-process; returns the output path."""
    output = os.path.join(tmp_dir, name)
    assert export_cli.main([*args, "--output", output]) == 0
    return output


def reference_tokens(model: DINOv3ViTModel, pixels: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The reference split of last_hidden_state: CLS = 0, registers = 1..R, patches = R+1.."""
    registers = model.config.num_register_tokens
    with torch.no_grad():
        hidden = model(pixel_values=pixels).last_hidden_state
    return {"cls": hidden[:, 0], "registers": hidden[:, 1:1 + registers],
            "patch_tokens": hidden[:, 1 + registers:]}


def reference_layers(model: DINOv3ViTModel, pixels: torch.Tensor, layers: List[int],
                     norm: bool) -> Dict[str, torch.Tensor]:
    """The reference of forward_layers: block i's output is hidden_states[i + 1] (index 0 is
    the embedding output), through model.norm when `norm`; stacked along dim 1 in the order of
    `layers` and split like reference_tokens, under layer_* keys."""
    registers = model.config.num_register_tokens
    with torch.no_grad():
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states
        assert len(hidden) == model.config.num_hidden_layers + 1
        stacked = torch.stack([model.norm(hidden[i + 1]) if norm else hidden[i + 1]
                               for i in layers], dim=1)
    return {"layer_cls": stacked[:, :, 0], "layer_registers": stacked[:, :, 1:1 + registers],
            "layer_patch_tokens": stacked[:, :, 1 + registers:]}


def per_token_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)


def check_layers(got: Dict[str, torch.Tensor], expected: Dict[str, torch.Tensor],
                 layers: List[int], label: str, max_abs: float, min_cosine: float) -> None:
    """Compares forward_layers' layer_* outputs with reference_layers' slot by slot, against
    max abs difference and least per-token cosine; prints one line of max abs diffs per layer."""
    for slot, layer in enumerate(layers):
        diffs = []
        for key in LAYER_KEYS:
            a, b = got[key][:, slot], expected[key][:, slot]
            diff = (a - b).abs().max().item()
            diffs.append(f"{key.removeprefix('layer_')} {diff:.2e}")
            assert diff <= max_abs, f"{label} layer={layer} {key}: max abs difference {diff}"
            cosine = per_token_cosine(a, b).min().item()
            assert cosine >= min_cosine, f"{label} layer={layer} {key}: least cosine {cosine}"
        print(f"{label} layer={layer}: max|d| " + ", ".join(diffs))
