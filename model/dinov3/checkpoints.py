"""Checkpoint loaders: a Hugging Face folder or Meta's .pth -> (ArchConfig, state dict).

The returned state dict uses the parameter names of DinoV3ViT (Meta's official names), is
validated key by key against the architecture, and is float32-or-as-stored; `rope_embed.periods`
is always present (Meta's stored bf16-rounded values, or exact values for Hugging Face, which
recomputes them). Every mismatch raises CheckpointError naming the key and what was expected.

Both layouts are memory-mapped (safetensors does so itself; a .pth is loaded with mmap=True where
its format allows): the returned tensors are backed by the file's pages, copy-on-write, so the
checkpoint's bytes are page cache (resident, but reclaimable), not this process's own memory.
Large checkpoints: hf_tensor_sizes / meta_tensor_sizes read every tensor's dtype and size without
loading any data (the safetensors headers; the .pth pickle), for a memory estimate before loading.
Both loaders read the pages tensor by tensor and report the bytes to a Progress, which draws a
one-line counter on stderr only when stderr is a terminal and the checkpoint is large or sharded
(progress_enabled); otherwise it prints nothing.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
import sys
from typing import Callable, Dict, List, NamedTuple, Optional, TextIO, Tuple

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


# ---------------------------------------------------------------- sizes and progress

LARGE_CHECKPOINT_BYTES = 512 * 2**20  # vitl16 and up (vitl16 in bfloat16 is about 0.6 GB)
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool}
_MAX_HEADER_BYTES = 100 * 2**20


class TensorSize(NamedTuple):
    """One stored tensor, as a checkpoint's header describes it."""

    name: str
    dtype: torch.dtype
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


class Progress:
    """Bytes read out of `total`, drawn as one '\\r'-rewritten line on `stream` (redrawn per
    whole percent) when `enabled`; a no-op otherwise."""

    def __init__(self, total: int, enabled: bool, stream: Optional[TextIO] = None) -> None:
        self.total, self.enabled = max(total, 1), enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done, self._drawn = 0, -1

    def update(self, label: str, nbytes: int) -> None:
        self.done += nbytes
        percent = min(100, self.done * 100 // self.total)
        if self.enabled and percent != self._drawn:
            self._drawn = percent
            self.stream.write(f"\rloading {label}: {percent:3d}% "
                              f"({self.done / 2**30:.2f} of {self.total / 2**30:.2f} GiB)\x1b[K")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn >= 0:
            self.stream.write("\n")
            self.stream.flush()


def _read_pages(tensor: Tensor) -> None:
    """Reads one byte of every 4 KiB page of a memory-mapped tensor: the file is read now (what
    a progress line shows) rather than by whatever touches the tensor first; nothing is copied."""
    if tensor.numel() and tensor.is_contiguous():
        tensor.reshape(-1).view(torch.uint8)[::4096].sum()


def progress_enabled(total_bytes: int, files: int, stream: Optional[TextIO] = None) -> bool:
    """A progress line is worth drawing: stderr is a terminal and the checkpoint is large
    (LARGE_CHECKPOINT_BYTES or more) or sharded over several files."""
    stream = stream if stream is not None else sys.stderr
    return stream.isatty() and (total_bytes >= LARGE_CHECKPOINT_BYTES or files > 1)


def _safetensors_sizes(path: str) -> List[TensorSize]:
    """Reads only the header: 8 bytes of little-endian length, then that much JSON."""
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > _MAX_HEADER_BYTES:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        return [TensorSize(name, _SAFETENSORS_DTYPES[info["dtype"]], math.prod(info["shape"]))
                for name, info in header.items()]
    except (OSError, ValueError, KeyError, TypeError, struct.error) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e


# ---------------------------------------------------------------- Hugging Face folders

def hf_weight_files(hf_dir: str) -> List[str]:
    """The safetensors files of a folder: model.safetensors, or the shards that
    model.safetensors.index.json names (sorted)."""
    single = os.path.join(hf_dir, "model.safetensors")
    index = os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        return [single]
    if os.path.exists(index):
        with open(index) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        return [os.path.join(hf_dir, shard) for shard in shards]
    raise CheckpointError(f"{hf_dir}: neither model.safetensors nor model.safetensors.index.json")


def hf_tensor_sizes(hf_dir: str) -> List[TensorSize]:
    """Every tensor of the folder's weight files, from their headers (no data read)."""
    return [size for path in hf_weight_files(hf_dir) for size in _safetensors_sizes(path)]


def _read_hf_tensors(hf_dir: str, progress: Optional[Progress]) -> StateDict:
    from safetensors import safe_open

    state: StateDict = {}
    for path in hf_weight_files(hf_dir):
        with safe_open(path, framework="pt") as f:
            for key in f.keys():
                state[key] = f.get_tensor(key)
                _read_pages(state[key])
                if progress is not None:
                    progress.update(os.path.basename(path), state[key].nbytes)
    return state


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


def load_hf_dir(hf_dir: str, variant: Optional[str] = None, progress: Optional[Progress] = None
                ) -> Tuple[ArchConfig, StateDict, dict]:
    """Loads a Hugging Face DINOv3 folder. Returns (config, state, preprocessor config or {}).
    `progress`, if given, is told the bytes of each tensor read."""
    config_path = os.path.join(hf_dir, "config.json")
    if not os.path.isfile(config_path):
        raise CheckpointError(f"{hf_dir}: no config.json (not a Hugging Face model folder)")
    with open(config_path) as f:
        config = hf_arch_config(json.load(f), config_path, variant)
    state = hf_to_internal(_read_hf_tensors(hf_dir, progress), config, hf_dir)
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


def _unwrap_meta(state: object, path: str) -> StateDict:
    """The state dict inside a loaded .pth (plain, or under 'model'/'teacher'; 'backbone.'
    prefixes dropped)."""
    for wrapper in ("model", "teacher"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return {re.sub(r"^backbone\.", "", k): v for k, v in state.items()}


def _mmap_pth(path: str) -> Optional[StateDict]:
    """The .pth memory-mapped (tensor data not read yet), or None where it cannot be (a file in
    the legacy, non-zip format, or not a checkpoint at all)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 -- the plain load reports what is wrong with the file
        return None
    return _unwrap_meta(state, path)


def meta_tensor_sizes(path: str) -> Optional[List[TensorSize]]:
    """Every tensor of a .pth without reading its data (memory-mapped); None for a legacy
    (non-zip) file, whose sizes are not known before loading it."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    state = _mmap_pth(path)
    if state is None:
        return None
    return [TensorSize(name, value.dtype, value.numel()) for name, value in state.items()]


def _read_pth(path: str, progress: Optional[Progress]) -> StateDict:
    """The .pth's state dict: memory-mapped (copy-on-write, never written back; the data stays
    in the page cache, not in this process's own memory), each tensor's pages read once here so
    that `progress` shows the reading. A legacy file is read by torch.load in one piece."""
    state = _mmap_pth(path)
    if state is None:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 -- any unpickling failure means a bad file
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from e
        return _unwrap_meta(loaded, path)
    for value in state.values():
        _read_pages(value)
        if progress is not None:
            progress.update(os.path.basename(path), value.nbytes)
    return state


def load_meta_checkpoint(path: str, variant: Optional[str] = None,
                         progress: Optional[Progress] = None) -> Tuple[ArchConfig, StateDict]:
    """Loads Meta's official .pth state dict (plain, or under a 'model'/'teacher' key).
    `progress`, if given, is told the bytes of each tensor read."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    state = _read_pth(path, progress)
    config = meta_arch_config(state, path, variant)
    state = meta_to_internal(state, config)
    validate_state_dict(state, config, path)
    return config, state
