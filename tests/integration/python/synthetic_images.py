"""Deterministic photo-like test images (smooth gradients, edges, texture and a little noise):
no real photos can be downloaded here, and pure noise would exaggerate resampling differences."""
import numpy as np


def photo_like(height, width, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= max(height - 1, 1)
    x /= max(width - 1, 1)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        base = 0.5 + 0.3 * np.sin(6.28 * (fx * x + fy * y) + phase) * (0.5 + 0.5 * x)
        base += 0.2 * ((x - 0.3 - 0.1 * c) ** 2 + (y - 0.6) ** 2 < 0.05)  # a disc with a hard edge
        channels.append(base)
    img = np.stack(channels, -1) + rng.normal(0, 0.02, (height, width, 3))
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def save(pixels, path, fmt, mode=None, **kwargs):
    from PIL import Image  # here, so photo_like needs only numpy (scripts/gpu_check_parity.py)

    image = Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    image.save(path, format=fmt, **kwargs)
    return path
