"""A generated image collection for the dinov3-embed tests, and helpers to run the command.

`make_collection(folder, count)`: `count` photo-like images (synthetic_images.photo_like; no
real photos can be downloaded here) of varied sizes (48..160 px a side) and formats (JPEG, PNG,
WebP, BMP) in three sub-folders, plus CORRUPT files the server must refuse: random bytes, an
empty file, text, a GIF (an unsupported format), a PNG signature followed by garbage, and an
image below the server's minimum side. Returns (valid ids, corrupt ids), ids being paths
relative to `folder` as dinov3-embed names them.
"""
import os
import subprocess
import sys
import time

import numpy as np

from tests.integration.python.server_process import ROOT
from tests.integration.python.synthetic_images import photo_like, save

FORMATS = [("JPEG", ".jpg", {"quality": 90}), ("PNG", ".png", {}), ("WEBP", ".webp", {}),
           ("BMP", ".bmp", {})]
WAIT_SECONDS = 300  # hang guard of every poll (many times what it bounds on the CI machine)


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_collection(folder, count):
    rng = np.random.default_rng(0)
    valid = []
    for i in range(count):
        fmt, ext, options = FORMATS[i % len(FORMATS)]
        height, width = (int(v) for v in rng.integers(48, 161, 2))
        relative = os.path.join(f"group{i % 3}", f"img{i:04d}{ext}")
        os.makedirs(os.path.join(folder, f"group{i % 3}"), exist_ok=True)
        save(photo_like(height, width, seed=i), os.path.join(folder, relative), fmt, **options)
        valid.append(relative)
    bad = os.path.join(folder, "bad")
    os.makedirs(bad, exist_ok=True)
    _write(os.path.join(bad, "random.jpg"), rng.integers(0, 256, 3000, np.uint8).tobytes())
    _write(os.path.join(bad, "empty.png"), b"")
    _write(os.path.join(bad, "text.webp"), b"not an image at all\n" * 20)
    save(photo_like(40, 40, seed=1), os.path.join(bad, "animation.jpg"), "GIF")
    _write(os.path.join(bad, "garbage.png"), b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50)
    save(photo_like(4, 4, seed=2), os.path.join(bad, "tiny.png"), "PNG")
    corrupt = sorted(os.path.join("bad", n) for n in os.listdir(bad))
    return sorted(valid), corrupt


def embed_command(*args):
    """argv of dinov3-embed run from the repository's client package."""
    return [sys.executable, "-m", "dinov3_client.bulk.embed", *map(str, args)]


def bulk_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "client", "python"),
                                         env.get("PYTHONPATH", "")])
    return env


def run_embed(*args, check=True):
    done = subprocess.run(embed_command(*args), capture_output=True, text=True, env=bulk_env(),
                          timeout=WAIT_SECONDS * 2)
    if check:
        assert done.returncode == 0, f"dinov3-embed failed:\n{done.stdout}\n{done.stderr}"
    return done


def manifest_lines(out):
    path = os.path.join(out, "manifest.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def wait_for_shards(out, shards, proc):
    """Polls until the run in `out` has committed `shards` shards; fails if it exits first."""
    deadline = time.monotonic() + WAIT_SECONDS
    while manifest_lines(out) < shards:
        assert proc.poll() is None, f"dinov3-embed exited early:\n{proc.stderr.read()}"
        assert time.monotonic() < deadline, f"no {shards} shards after {WAIT_SECONDS} s"
        time.sleep(0.05)
