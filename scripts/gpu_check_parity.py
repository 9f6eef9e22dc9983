"""Helper of scripts/gpu-check-bundle.sh: server outputs against the same TorchScript export run
by torch on the CPU. Needs only torch and numpy (no PIL: the images are written with zlib).

  python3 scripts/gpu_check_parity.py images DIR
      writes DIR/<name>.png and DIR/<name>.npy (the exact RGB8 pixels) for a few photo-like
      images of several sizes; prints the PNG paths, one a line.
  python3 scripts/gpu_check_parity.py compare --model M.pt [--reference R.pt]
          --embed EMBED.jsonl --images DIR [--min-cosine 0.9999]
      EMBED.jsonl is `dinov3-client embed --outputs=cls,pooled[,patch_tokens]` output (one JSON
      object per image, "id" = the file name). The reference runs R.pt (default: M.pt) in
      float32 on the CPU on the pixels preprocessed the server's way for RESIZE_FIXED: /255,
      antialiased bilinear resize to the model's default size (align_corners=False), then
      (x - mean) / std with the model's metadata. CLS and pooled must reach --min-cosine for
      every image; patch tokens are reported (min over tokens) and must reach it too when sent.
      Exit 0 when they do, 1 otherwise.
"""
import argparse
import json
import os
import struct
import sys
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tests.integration.python.synthetic_images import photo_like  # noqa: E402  (numpy only)

SIZES = {"square224": (224, 224), "landscape": (300, 400), "odd": (517, 333),
         "tall": (640, 200)}


def write_png(path, rgb):
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(height))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


def make_images(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for i, (name, (h, w)) in enumerate(SIZES.items()):
        pixels = photo_like(h, w, seed=100 + i)
        np.save(os.path.join(out_dir, name + ".npy"), pixels)
        path = os.path.join(out_dir, name + ".png")
        write_png(path, pixels)
        print(path)


def load(path):
    extra = {"dinov3.json": ""}
    module = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    return module.eval(), json.loads(extra["dinov3.json"])


def cosine(a, b):
    a = torch.as_tensor(np.asarray(a, np.float64))
    b = torch.as_tensor(np.asarray(b, np.float64))
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def compare(args):
    model_meta = load(args.model)[1]
    reference, meta = load(args.reference or args.model)
    reference = reference.float()
    height, width = meta["default_input_size"]
    mean = torch.tensor(meta["image_mean"], dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(meta["image_std"], dtype=torch.float32).view(3, 1, 1)
    print(f"served model: {args.model} ({model_meta['variant']}, {model_meta['dtype']}); "
          f"reference: {args.reference or args.model} in float32 on cpu; input {height}x{width}")
    with open(args.embed) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines:
        print("FAIL: no embeddings in", args.embed)
        return 1
    ok = True
    worst = {}
    for got in lines:
        name = os.path.splitext(os.path.basename(got["id"]))[0]
        pixels = np.load(os.path.join(args.images, name + ".npy"))
        x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).float() / 255.0
        x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear",
                                            align_corners=False, antialias=True)
        x = ((x - mean) / std).contiguous()
        with torch.inference_mode():
            out = reference(x)
        patches = out["patch_tokens"][0]
        want = {"cls": out["cls"][0], "pooled": patches.mean(0), "patch_tokens": patches}
        parts = []
        for key, ref in want.items():
            if key not in got:
                continue
            value = np.asarray(got[key], np.float64)
            if value.shape != tuple(ref.shape):
                print(f"FAIL {name} {key}: shape {value.shape}, expected {tuple(ref.shape)}")
                ok = False
                continue
            cos = cosine(value, ref).min().item()
            max_abs = float(np.abs(value - ref.double().numpy()).max())
            worst[key] = min(worst.get(key, 1.0), cos)
            parts.append(f"{key} cos={cos:.7f} max_abs={max_abs:.2e}")
            if cos < args.min_cosine:
                ok = False
                parts[-1] += " BELOW"
        print(f"  {name} {pixels.shape[0]}x{pixels.shape[1]}: " + ", ".join(parts))
    for key in ("cls", "pooled"):
        if key not in worst:
            print(f"FAIL: no {key} in the server's output")
            ok = False
    summary = ", ".join(f"{k} {v:.7f}" for k, v in worst.items())
    print(f"{'PASS' if ok else 'FAIL'}: {len(lines)} images, min cosine {summary} "
          f"(threshold {args.min_cosine})")
    return 0 if ok else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    images = sub.add_parser("images")
    images.add_argument("dir")
    cmp = sub.add_parser("compare")
    cmp.add_argument("--model", required=True)
    cmp.add_argument("--reference")
    cmp.add_argument("--embed", required=True)
    cmp.add_argument("--images", required=True)
    cmp.add_argument("--min-cosine", type=float, default=0.9999)
    args = parser.parse_args(argv)
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    if args.command == "images":
        make_images(args.dir)
        return 0
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
