"""Checkpoint loaders: a Hugging Face folder or Meta's .pth -> (ArchConfig, state dict).

The returned state dict uses the parameter names of DinoV3ViT (Meta's official names), is
validated key by key against the architecture, and is float32-or-as-stored; `rope_embed.periods`
is always present (Meta's stored bf16-rounded values, or exact values for Hugging Face, which
recomputes them). Every mismatch raises CheckpointError naming the key and what was expected.
"""
from __future__ import annotations

import json
import os
import re
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from model.dinov3.config import ArchConfig, match_preset, preset
from model.dinov3.vit import DinoV3ViT, rope_periods

StateDict = Dict[str, Tensor]

# Present in official checkpoints but not used for inference.
_META_IGNORED = re.compile(r"^(mask_token|local_cls_norm\..*|.*\.bias_mask)$")
_HF_IGNORED = re.compile(r"^embeddings\.mask_token$")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the DINOv3 architecture."""


def validate_state_dict(state: StateDict, config: ArchConfig, source: str,
                        source_name: Callable[[str], str] = lambda key: key) -> None:
    """Raises CheckpointError unless `state` has exactly the keys and shapes of `config`.

    `source_name` gives the checkpoint's own name of a DinoV3ViT key, for the messages.
    """
    with torch.device("meta"):  # shapes only: no memory, even for 7B
        expected = {k: tuple(v.shape) for k, v in DinoV3ViT(config).state_dict().items()}
    for key, shape in expected.items():
        if key not in state:
            raise CheckpointError(f"{source}: missing key {source_name(key)!r} "
                                  f"(expected shape {list(shape)})")
        if tuple(state[key].shape) != shape:
            raise CheckpointError(
                f"{source}: key {source_name(key)!r} has shape {list(state[key].shape)}, "
                f"expected {list(shape)} for {config.variant}")
    for key in state:
        if key not in expected:
            raise CheckpointError(f"{source}: unexpected key {key!r} for {config.variant}")


# ---------------------------------------------------------------- Hugging Face folders

def _read_hf_tensors(hf_dir: str) -> StateDict:
    from safetensors.torch import load_file

    single = os.path.join(hf_dir, "model.safetensors")
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        return load_file(single)
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state: StateDict = {}
        for shard in shards:
            state.update(load_file(os.path.join(hf_dir, shard)))
        return state
    raise CheckpointError(f"{hf_dir}: neither model.safetensors nor model.safetensors.index.json")


def hf_arch_config(hf: dict, source: str, variant: Optional[str]) -> ArchConfig:
    """ArchConfig from a Hugging Face DINOv3ViTConfig dict (config.json)."""
    if hf.get("model_type") != "dinov3_vit":
        raise CheckpointError(f"{source}: model_type is {hf.get('model_type')!r}, "
                              "expected 'dinov3_vit'")
    ffn = "swiglu" if hf.get("use_gated_mlp", False) else "mlp"
    act = hf.get("hidden_act", "gelu")
    if act != {"mlp": "gelu", "swiglu": "silu"}[ffn]:
        raise CheckpointError(f"{source}: hidden_act {act!r} is not supported for a {ffn} FFN")
    for flag in ("proj_bias", "mlp_bias"):
        if not hf.get(flag, True):
            raise CheckpointError(f"{source}: {flag}=false is not a DINOv3 architecture")
    dim, heads = hf["hidden_size"], hf["num_attention_heads"]
    name = match_preset(dim, heads, ffn, hf["intermediate_size"])
    if name is None:
        raise CheckpointError(
            f"{source}: no DINOv3 variant has hidden_size={dim}, num_attention_heads={heads}, "
            f"{ffn} FFN with intermediate_size={hf['intermediate_size']}")
    if variant is not None and variant != name:
        raise CheckpointError(f"{source}: --variant {variant} given but config.json describes {name}")
    return ArchConfig(
        variant=name, embed_dim=dim, depth=hf["num_hidden_layers"], num_heads=heads, ffn=ffn,
        ffn_hidden=hf["intermediate_size"],
        qkv_bias=any(hf.get(k, d) for k, d in
                     (("query_bias", True), ("key_bias", False), ("value_bias", True))),
        patch_size=hf.get("patch_size", 16), num_registers=hf.get("num_register_tokens", 0),
        layer_norm_eps=hf.get("layer_norm_eps", 1e-5), rope_base=hf.get("rope_theta", 100.0))


_HF_TOP = {"embeddings.cls_token": "cls_token", "embeddings.register_tokens": "storage_tokens",
           "embeddings.patch_embeddings.weight": "patch_embed.proj.weight",
           "embeddings.patch_embeddings.bias": "patch_embed.proj.bias",
           "norm.weight": "norm.weight", "norm.bias": "norm.bias"}


def _hf_block_renames(ffn: str) -> Dict[str, str]:
    """Prefix renames inside layer.N / blocks.N (the fused q/k/v is handled separately)."""
    renames = {"norm1.": "norm1.", "norm2.": "norm2.", "attention.o_proj.": "attn.proj.",
               "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma"}
    if ffn == "mlp":
        renames.update({"mlp.up_proj.": "mlp.fc1.", "mlp.down_proj.": "mlp.fc2."})
    else:
        renames.update({"mlp.gate_proj.": "mlp.w1.", "mlp.up_proj.": "mlp.w2.",
                        "mlp.down_proj.": "mlp.w3."})
    return renames


def _rename_prefix(rest: str, renames: Dict[str, str]) -> Optional[str]:
    for old, new in renames.items():
        if rest.startswith(old):
            return new + rest[len(old):]
    return None


def hf_name(key: str, ffn: str) -> str:
    """The Hugging Face name of a DinoV3ViT key (q_proj stands for the fused q/k/v)."""
    top = {v: k for k, v in _HF_TOP.items()}
    if key in top:
        return top[key]
    m = re.match(r"^blocks\.(\d+)\.(.+)$", key)
    if m is None:
        return key
    rest = m.group(2).replace("attn.qkv.", "attention.q_proj.")
    renamed = _rename_prefix(rest, {v: k for k, v in _hf_block_renames(ffn).items()})
    return f"layer.{m.group(1)}.{renamed or rest}"


def hf_to_internal(hf_state: StateDict, config: ArchConfig, source: str) -> StateDict:
    """Maps Hugging Face keys to DinoV3ViT keys; fuses q/k/v (zero bias where HF has none)."""
    renames = _hf_block_renames(config.ffn)
    out: StateDict = {}
    qkv: Dict[int, Dict[str, Tensor]] = {}
    for key, value in hf_state.items():
        key = re.sub(r"^model\.layer\.", "layer.", key)
        if _HF_IGNORED.match(key):
            continue
        if key in _HF_TOP:
            out[_HF_TOP[key]] = value
            continue
        m = re.match(r"^layer\.(\d+)\.(.+)$", key)
        if m is None:
            raise CheckpointError(f"{source}: unexpected key {key!r}")
        index, rest = int(m.group(1)), m.group(2)
        p = re.match(r"^attention\.([qkv])_proj\.(weight|bias)$", rest)
        if p is not None:
            qkv.setdefault(index, {})[f"{p.group(1)}.{p.group(2)}"] = value
            continue
        target = _rename_prefix(rest, renames)
        if target is None:
            raise CheckpointError(f"{source}: unexpected key {key!r}")
        out[f"blocks.{index}.{target}"] = value
    for index, parts in sorted(qkv.items()):
        for name in ("q.weight", "k.weight", "v.weight"):
            if name not in parts:
                raise CheckpointError(f"{source}: missing key "
                                      f"'layer.{index}.attention.{name[0]}_proj.weight'")
        out[f"blocks.{index}.attn.qkv.weight"] = torch.cat(
            [parts["q.weight"], parts["k.weight"], parts["v.weight"]])
        if config.qkv_bias:
            zeros = parts["q.weight"].new_zeros(config.embed_dim)
            out[f"blocks.{index}.attn.qkv.bias"] = torch.cat(
                [parts.get(f"{n}.bias", zeros) for n in "qkv"])
    out["rope_embed.periods"] = rope_periods(config.head_dim, config.rope_base)
    return out


def load_hf_dir(hf_dir: str, variant: Optional[str] = None) -> Tuple[ArchConfig, StateDict, dict]:
    """Loads a Hugging Face DINOv3 folder. Returns (config, state, preprocessor config or {})."""
    config_path = os.path.join(hf_dir, "config.json")
    if not os.path.isfile(config_path):
        raise CheckpointError(f"{hf_dir}: no config.json (not a Hugging Face model folder)")
    with open(config_path) as f:
        config = hf_arch_config(json.load(f), config_path, variant)
    state = hf_to_internal(_read_hf_tensors(hf_dir), config, hf_dir)
    validate_state_dict(state, config, hf_dir, lambda key: hf_name(key, config.ffn))
    processor: dict = {}
    processor_path = os.path.join(hf_dir, "preprocessor_config.json")
    if os.path.isfile(processor_path):
        with open(processor_path) as f:
            processor = json.load(f)
    return config, state, processor


# ---------------------------------------------------------------- Meta .pth files

def meta_arch_config(state: StateDict, source: str, variant: Optional[str]) -> ArchConfig:
    """Infers the architecture from tensor shapes; heads come from the matching preset."""
    for key in ("cls_token", "blocks.0.attn.qkv.weight", "patch_embed.proj.weight"):
        if key not in state:
            raise CheckpointError(f"{source}: missing key {key!r}; not a DINOv3 checkpoint")
    dim = state["cls_token"].shape[-1]
    ffn = "swiglu" if "blocks.0.mlp.w1.weight" in state else "mlp"
    hidden_key = "blocks.0.mlp.w1.weight" if ffn == "swiglu" else "blocks.0.mlp.fc1.weight"
    if hidden_key not in state:
        raise CheckpointError(f"{source}: missing key {hidden_key!r}")
    hidden = state[hidden_key].shape[0]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"^blocks\.(\d+)\.", k)))
    name = match_preset(dim, None, ffn, hidden) if variant is None else variant
    if name is None:
        raise CheckpointError(f"{source}: no DINOv3 variant has embed_dim={dim} with a {ffn} FFN "
                              f"of width {hidden}; pass --variant")
    base = preset(name, depth)
    registers = state["storage_tokens"].shape[1] if "storage_tokens" in state else 0
    return ArchConfig(variant=name, embed_dim=base.embed_dim, depth=depth,
                      num_heads=base.num_heads, ffn=base.ffn, ffn_hidden=base.ffn_hidden,
                      qkv_bias="blocks.0.attn.qkv.bias" in state,
                      patch_size=state["patch_embed.proj.weight"].shape[-1],
                      num_registers=registers)


def meta_to_internal(state: StateDict, config: ArchConfig) -> StateDict:
    """Applies each block's bias_mask to its qkv bias and drops training-only tensors."""
    out: StateDict = {}
    for key, value in state.items():
        if _META_IGNORED.match(key):
            continue
        if key.endswith("attn.qkv.bias"):
            # Zero the K third (where the stored mask is 0), never multiply: unused K entries
            # may hold NaN and NaN * 0 is NaN.
            mask_key = key[: -len("bias")] + "bias_mask"
            keep = state.get(mask_key)
            if keep is None:  # No mask stored: the K third must still be dropped.
                keep = torch.ones_like(value)
                keep[config.embed_dim: 2 * config.embed_dim] = 0
            value = torch.where(keep.bool(), value, torch.zeros_like(value))
        out[key] = value
    out.setdefault("rope_embed.periods", rope_periods(config.head_dim, config.rope_base))
    return out


def load_meta_checkpoint(path: str, variant: Optional[str] = None) -> Tuple[ArchConfig, StateDict]:
    """Loads Meta's official .pth state dict (plain, or under a 'model'/'teacher' key)."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means a bad file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from e
    for wrapper in ("model", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    state = {re.sub(r"^backbone\.", "", k): v for k, v in state.items()}
    config = meta_arch_config(state, path, variant)
    state = meta_to_internal(state, config)
    validate_state_dict(state, config, path)
    return config, state
