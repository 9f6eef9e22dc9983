"""Architecture descriptions of the DINOv3 ViT family (DESIGN.md section 5).

An ArchConfig fully determines the shapes of a DinoV3ViT. The presets are the released
variants; `dataclasses.replace(preset("vits16"), depth=2)` gives a small test model of the
same architecture.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Tuple

LVD_MEAN = (0.485, 0.456, 0.406)
LVD_STD = (0.229, 0.224, 0.225)
SAT_MEAN = (0.430, 0.411, 0.296)
SAT_STD = (0.213, 0.156, 0.143)

# Training data of the released weights -> the normalisation those weights expect.
DATASET_NORMALISATION: Dict[str, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {
    "lvd1689m": (LVD_MEAN, LVD_STD),
    "sat493m": (SAT_MEAN, SAT_STD),
}


@dataclasses.dataclass(frozen=True)
class ArchConfig:
    """Shapes and options of one DINOv3 ViT."""

    variant: str
    embed_dim: int
    depth: int
    num_heads: int
    ffn: str  # "mlp" (GELU) or "swiglu"
    ffn_hidden: int
    qkv_bias: bool = True
    patch_size: int = 16
    num_registers: int = 4
    layer_norm_eps: float = 1e-5
    rope_base: float = 100.0

    def __post_init__(self) -> None:
        if self.ffn not in ("mlp", "swiglu"):
            raise ValueError(f"ffn must be 'mlp' or 'swiglu', got {self.ffn!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 4:
            raise ValueError(f"head_dim {self.head_dim} must be a multiple of 4 for 2-D RoPE")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


def swiglu_hidden(embed_dim: int, ratio: float, align: int) -> int:
    """Hidden width of the official SwiGLU FFN: int(D*ratio*2/3) rounded up to `align`."""
    hidden = int(embed_dim * ratio * 2 / 3)
    return (hidden + align - 1) // align * align


PRESETS: Dict[str, ArchConfig] = {
    c.variant: c
    for c in (
        ArchConfig("vits16", 384, 12, 6, "mlp", 1536),
        ArchConfig("vits16plus", 384, 12, 6, "swiglu", swiglu_hidden(384, 6, 8)),
        ArchConfig("vitb16", 768, 12, 12, "mlp", 3072),
        ArchConfig("vitl16", 1024, 24, 16, "mlp", 4096),
        ArchConfig("vitl16plus", 1024, 24, 16, "swiglu", swiglu_hidden(1024, 6, 8)),
        ArchConfig("vith16plus", 1280, 32, 20, "swiglu", swiglu_hidden(1280, 6, 8)),
        ArchConfig("vit7b16", 4096, 40, 32, "swiglu", swiglu_hidden(4096, 3, 64), qkv_bias=False),
    )
}


def preset(variant: str, depth: int | None = None) -> ArchConfig:
    """The preset named `variant`, optionally with fewer blocks (a test model)."""
    if variant not in PRESETS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(PRESETS)}")
    config = PRESETS[variant]
    if depth is not None and depth != config.depth:
        config = dataclasses.replace(config, depth=depth)
    return config


def match_preset(embed_dim: int, num_heads: int | None, ffn: str, ffn_hidden: int) -> str | None:
    """Name of the preset with these widths (any depth), or None."""
    for name, c in PRESETS.items():
        if (c.embed_dim, c.ffn, c.ffn_hidden) == (embed_dim, ffn, ffn_hidden) and (
                num_heads is None or num_heads == c.num_heads):
            return name
    return None
