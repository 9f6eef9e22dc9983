"""Turns (ArchConfig, state dict) into the TorchScript archive the server loads.

The archive holds the scripted DinoV3ViT (weights in the requested dtype, RoPE periods kept in
float32) and an extra file `dinov3.json` with the metadata of DESIGN.md section 4.

dtype "int8" (CPU only) is the float32 module with every nn.Linear dynamically quantised:
int8 weights with one scale per tensor, activations quantised per call (PyTorch's x86 quantized
engine, FBGEMM/oneDNN); the patch embedding, norms, RoPE and attention stay float32. It is
offered for the MLP variants only (vits16, vitb16, vitl16): with random weights on real photos
their least per-token cosine to float32 was 0.998, while the SwiGLU variants fell below the
0.99 bound int8 had to meet (vits16plus: 0.989 for a register token), BENCHMARKS.md.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from typing import Dict, Sequence

import torch
from torch import Tensor, nn

from model.dinov3.config import DATASET_NORMALISATION, ArchConfig
from model.dinov3.vit import DinoV3ViT

METADATA_FILE = "dinov3.json"
FORMAT_VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
EXPORT_DTYPES = sorted([*DTYPES, "int8"])
QUANTIZED_ENGINE = "x86"  # LibTorch's default engine on x86 CPUs: the server sets none
DEFAULT_INPUT_SIZE = (224, 224)


def weights_sha256(state: Dict[str, Tensor]) -> str:
    """Hash of names, dtypes, shapes and bytes of every tensor, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def build_module(config: ArchConfig, state: Dict[str, Tensor], dtype: str) -> DinoV3ViT:
    """An eval-mode DinoV3ViT with `state` loaded (strictly) and cast to `dtype` (int8: see
    the module docstring)."""
    with torch.device("meta"):  # allocate nothing: the checkpoint's tensors are assigned
        model = DinoV3ViT(config)
    model.load_state_dict(state, strict=True, assign=True)
    model = model.to(DTYPES.get(dtype, torch.float32)).eval()
    model.rope_embed.periods = state["rope_embed.periods"].to(torch.float32).clone()
    if dtype == "int8":
        if QUANTIZED_ENGINE not in torch.backends.quantized.supported_engines:
            raise ValueError(f"int8 needs PyTorch's {QUANTIZED_ENGINE} quantized engine (x86 "
                             "CPUs); this torch has "
                             f"{torch.backends.quantized.supported_engines}")
        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = QUANTIZED_ENGINE
        try:
            with warnings.catch_warnings():  # torch.ao.quantization's notice about torchao
                warnings.simplefilter("ignore", DeprecationWarning)
                model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear},
                                                               dtype=torch.qint8)
        finally:
            torch.backends.quantized.engine = previous
    return model


def exported_tensors(model: DinoV3ViT) -> Dict[str, Tensor]:
    """The module's tensors as exported: its state dict, with each dynamically quantised
    Linear's packed weight unpacked into int8 values, scale and bias."""
    state = {k: v for k, v in model.state_dict().items() if isinstance(v, Tensor)}
    for name, module in model.named_modules():
        if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
            weight = module.weight()
            state[f"{name}.weight.int8"] = weight.int_repr()
            state[f"{name}.weight.scale"] = torch.tensor([weight.q_scale()], dtype=torch.float64)
            if module.bias() is not None:
                state[f"{name}.bias"] = module.bias()
    return state


def check_scripted(scripted: torch.jit.ScriptModule, config: ArchConfig) -> None:
    """Runs forward and forward_layers on a zero input, so that a scripting problem fails the
    export, not the server: checks their shapes and that forward_layers' final outputs equal
    forward's exactly."""
    patch, dim, registers = config.patch_size, config.embed_dim, config.num_registers
    layers = [config.depth - 1, 0]
    pixels = torch.zeros(1, 3, patch, 2 * patch)
    with torch.inference_mode():
        out = scripted(pixels)
        out_layers = scripted.forward_layers(pixels, layers, True)
    expected = {"cls": [1, dim], "registers": [1, registers, dim], "patch_tokens": [1, 2, dim]}
    _check_shapes("forward", out, expected)
    expected.update({"layer_cls": [1, 2, dim], "layer_registers": [1, 2, registers, dim],
                     "layer_patch_tokens": [1, 2, 2, dim]})
    _check_shapes("forward_layers", out_layers, expected)
    for key, value in out.items():
        if not torch.equal(out_layers[key], value):
            raise RuntimeError(f"scripted forward_layers' {key!r} differs from forward's")


def _check_shapes(method: str, out: Dict[str, Tensor], expected: Dict[str, list]) -> None:
    got = {k: list(v.shape) for k, v in out.items()}
    if got != expected:
        raise RuntimeError(f"scripted {method} produced shapes {got}, expected {expected}")


def make_metadata(config: ArchConfig, dtype: str, source: dict, weights_hash: str,
                  dataset: str, mean: Sequence[float] | None = None,
                  std: Sequence[float] | None = None) -> dict:
    default_mean, default_std = DATASET_NORMALISATION[dataset]
    return {
        "format_version": FORMAT_VERSION,
        "variant": config.variant,
        "embed_dim": config.embed_dim,
        "patch_size": config.patch_size,
        "num_registers": config.num_registers,
        "num_heads": config.num_heads,
        "depth": config.depth,
        "ffn": config.ffn,
        "default_input_size": list(DEFAULT_INPUT_SIZE),
        "image_mean": [float(v) for v in (mean or default_mean)],
        "image_std": [float(v) for v in (std or default_std)],
        "weights_dataset": dataset,
        "dtype": dtype,
        "source": source,
        "untrained": source.get("kind") == "random",
        "weights_sha256": weights_hash,
        "torch_version": torch.__version__,
        "arch": dataclasses.asdict(config),
    }


def export_torchscript(config: ArchConfig, state: Dict[str, Tensor], dtype: str, output: str,
                       source: dict, dataset: str = "lvd1689m",
                       mean: Sequence[float] | None = None,
                       std: Sequence[float] | None = None) -> dict:
    """Scripts, checks and saves the model; returns the metadata written into the archive."""
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype must be one of {EXPORT_DTYPES}, got {dtype!r}")
    if dtype == "int8" and config.ffn != "mlp":
        raise ValueError(f"int8 is offered for the MLP variants (vits16, vitb16, vitl16) only, "
                         f"not {config.variant} (ffn {config.ffn}): its least per-token cosine "
                         f"to float32 fell below 0.99 (see BENCHMARKS.md); use bfloat16")
    model = build_module(config, state, dtype)
    metadata = make_metadata(config, dtype, source, weights_sha256(exported_tensors(model)),
                             dataset, mean, std)
    scripted = torch.jit.script(model)
    check_scripted(scripted, config)
    torch.jit.save(scripted, output,
                   _extra_files={METADATA_FILE: json.dumps(metadata, indent=2, sort_keys=True)})
    return metadata
