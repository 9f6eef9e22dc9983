"""Command line: export a DINOv3 checkpoint (or a random model) to the server's TorchScript file.

  python -m model.export --hf-dir DIR --output FILE.pt
  python -m model.export --meta-checkpoint FILE.pth [--variant vitl16] --output FILE.pt
  python -m model.export --random --variant vits16 [--depth N] [--seed S] --output FILE.pt
  common: --dtype float32|float16|bfloat16|int8 (default float32; int8: Linear layers
            dynamically quantised, for CPUs, see README "CPU compute dtype")
          --weights-dataset lvd1689m|sat493m (normalisation; default: inferred, else lvd1689m)

Exit status 0 on success; 2 with a one-line message on a bad checkpoint or bad arguments.

Before loading a checkpoint (--hf-dir, --meta-checkpoint) one line on stderr gives the peak memory
the export will need, estimated from the tensor sizes in the checkpoint's headers (peak_memory
says how). While loading, a progress line is drawn on stderr if stderr is a terminal and the
checkpoint is large (vitl16 and up) or sharded; nothing otherwise. --random prints neither.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from model.dinov3.checkpoints import (
    CheckpointError, Progress, TensorSize, hf_tensor_sizes, hf_weight_files, load_hf_dir,
    load_meta_checkpoint, meta_tensor_sizes, progress_enabled)
from model.dinov3.config import DATASET_NORMALISATION, PRESETS, ArchConfig, preset
from model.dinov3.exporter import DTYPES, EXPORT_DTYPES, export_torchscript
from model.dinov3.vit import DinoV3ViT, random_init


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m model.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--hf-dir", help="Hugging Face folder (config.json + model.safetensors)")
    src.add_argument("--meta-checkpoint", help="Meta's official .pth state dict")
    src.add_argument("--random", action="store_true", help="deterministic untrained weights")
    parser.add_argument("--variant", choices=sorted(PRESETS),
                        help="architecture (required with --random; else inferred and checked)")
    parser.add_argument("--depth", type=int, help="fewer blocks, for test models (--random only)")
    parser.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")
    parser.add_argument("--dtype", choices=EXPORT_DTYPES, default="float32")
    parser.add_argument("--weights-dataset", choices=sorted(DATASET_NORMALISATION),
                        help="training data of the weights, sets image mean/std")
    parser.add_argument("--output", required=True, help="TorchScript file to write")
    args = parser.parse_args(argv)
    if args.random and args.variant is None:
        parser.error("--random needs --variant")
    if args.depth is not None and not args.random:
        parser.error("--depth only applies to --random")
    return args


def infer_dataset(args: argparse.Namespace, processor: dict) -> str:
    if args.weights_dataset:
        return args.weights_dataset
    if processor.get("image_mean") and processor["image_mean"][0] < 0.45:
        return "sat493m"
    path = args.meta_checkpoint or args.hf_dir or ""
    return "sat493m" if "sat493m" in os.path.basename(os.path.normpath(path)).lower() else "lvd1689m"


_QKV_PROJ = (".q_proj.", ".k_proj.", ".v_proj.")


def peak_memory(sizes: Sequence[TensorSize], dtype: str, fuses_qkv: bool) -> Dict[str, int]:
    """Bytes of memory the export holds at its peak, by part, from the checkpoint's tensors.

    checkpoint: every tensor as stored, ignored ones included: the loaders memory-map the file
      and read all of it (page cache: resident, reclaimable); held until the archive is written.
    qkv_fuse (Hugging Face only): the fused qkv weights and biases, a copy of q/k/v_proj.
    cast: the copy of each tensor whose stored dtype is not the export's (float32 for int8).
    int8_copy: quantize_dynamic deep-copies the float32 module (4 bytes a value) and adds the
      int8 weights (at most 1 byte a value).
    hash_copy: weights_sha256 copies one tensor's bytes at a time: the largest.
    peak = the sum of these; measured peak RSS was within 3% of it for vitb16 (README).
    """
    target = DTYPES.get(dtype, torch.float32)
    numel = sum(t.numel for t in sizes)
    parts = {
        "checkpoint": sum(t.nbytes for t in sizes),
        "qkv_fuse": sum(t.nbytes for t in sizes if any(p in t.name for p in _QKV_PROJ))
        if fuses_qkv else 0,
        "cast": sum(t.numel * target.itemsize for t in sizes if t.dtype != target),
        "int8_copy": numel * 5 if dtype == "int8" else 0,
        "hash_copy": max((t.numel for t in sizes), default=0) * target.itemsize,
    }
    parts["peak"] = sum(parts.values())
    return parts


def describe_peak(parts: Dict[str, int]) -> str:
    """The stderr line: the peak and its nonzero parts, in GiB."""
    detail = " + ".join(f"{k} {v / 2**30:.2f}" for k, v in parts.items() if v and k != "peak")
    return f"peak memory estimate: {parts['peak'] / 2**30:.2f} GiB ({detail})"


def prepare_load(args: argparse.Namespace) -> Progress:
    """Prints the peak-memory line for the checkpoint named by `args`; returns the Progress
    the loader reports to (drawing only on a terminal, for a large or sharded checkpoint)."""
    if args.hf_dir and not os.path.isfile(os.path.join(args.hf_dir, "config.json")):
        return Progress(0, False)  # not a model folder: load_hf_dir says so
    if args.hf_dir:
        sizes: Optional[List[TensorSize]] = hf_tensor_sizes(args.hf_dir)
        files = len(hf_weight_files(args.hf_dir))
    else:
        sizes, files = meta_tensor_sizes(args.meta_checkpoint), 1
    if sizes is None:  # no sizes without loading it
        print("peak memory estimate: unknown (the .pth cannot be memory-mapped: legacy format?); "
              "at least the file size, read into memory", file=sys.stderr)
        total = os.path.getsize(args.meta_checkpoint)
    else:
        print(describe_peak(peak_memory(sizes, args.dtype, bool(args.hf_dir))), file=sys.stderr)
        total = sum(t.nbytes for t in sizes)
    return Progress(total, progress_enabled(total, files))


# (config, state dict, preprocessor config or {}, source metadata for dinov3.json)
Loaded = Tuple[ArchConfig, Dict[str, torch.Tensor], dict, dict]


def load_source(args: argparse.Namespace) -> Loaded:
    """The model the arguments name: a checkpoint (peak-memory line, progress) or --random."""
    if args.random:
        config = preset(args.variant, args.depth)
        state = random_init(DinoV3ViT(config), args.seed).state_dict()
        return config, state, {}, {"kind": "random", "seed": args.seed}
    progress = prepare_load(args)
    try:
        if args.hf_dir:
            config, state, processor = load_hf_dir(args.hf_dir, args.variant, progress)
            return config, state, processor, {"kind": "huggingface",
                                              "path": os.path.abspath(args.hf_dir)}
        config, state = load_meta_checkpoint(args.meta_checkpoint, args.variant, progress)
        return config, state, {}, {"kind": "meta", "path": os.path.abspath(args.meta_checkpoint)}
    finally:
        progress.close()


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        config, state, processor, source = load_source(args)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        metadata = export_torchscript(
            config, state, args.dtype, args.output, source, infer_dataset(args, processor),
            processor.get("image_mean"), processor.get("image_std"))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = {k: metadata[k] for k in ("variant", "depth", "embed_dim", "dtype", "untrained",
                                        "weights_sha256")}
    print(f"wrote {args.output}: {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
