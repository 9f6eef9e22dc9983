"""Command line: export a DINOv3 checkpoint (or a random model) to the server's TorchScript file.

  python -m model.export --hf-dir DIR --output FILE.pt
  python -m model.export --meta-checkpoint FILE.pth [--variant vitl16] --output FILE.pt
  python -m model.export --random --variant vits16 [--depth N] [--seed S] --output FILE.pt
  common: --dtype float32|float16|bfloat16|int8 (default float32; int8: Linear layers
            dynamically quantised, for CPUs, see README "CPU compute dtype")
          --weights-dataset lvd1689m|sat493m (normalisation; default: inferred, else lvd1689m)

Exit status 0 on success; 2 with a one-line message on a bad checkpoint or bad arguments.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from model.dinov3.checkpoints import CheckpointError, load_hf_dir, load_meta_checkpoint
from model.dinov3.config import DATASET_NORMALISATION, PRESETS, preset
from model.dinov3.exporter import EXPORT_DTYPES, export_torchscript
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


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    processor: dict = {}
    try:
        if args.hf_dir:
            config, state, processor = load_hf_dir(args.hf_dir, args.variant)
            source = {"kind": "huggingface", "path": os.path.abspath(args.hf_dir)}
        elif args.meta_checkpoint:
            config, state = load_meta_checkpoint(args.meta_checkpoint, args.variant)
            source = {"kind": "meta", "path": os.path.abspath(args.meta_checkpoint)}
        else:
            config = preset(args.variant, args.depth)
            state = random_init(DinoV3ViT(config), args.seed).state_dict()
            source = {"kind": "random", "seed": args.seed}
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
