"""The DINOv3 ViT network, written to be compiled with torch.jit.script.

One scripted module serves every input size: H and W may be any multiples of the patch size
and the batch size is free. Parameter names follow Meta's official checkpoints (the Hugging
Face layout is mapped onto them by checkpoints.py).

forward(pixel_values [B,3,H,W] float, already normalised) -> {
    "cls":          [B, D]          final-normed token 0,
    "registers":    [B, R, D]       final-normed tokens 1..R,
    "patch_tokens": [B, h*w, D]     final-normed patch tokens, row-major (y outer, x inner),
} in the dtype of the weights. The input is cast to that dtype; RoPE runs in float32.

forward_layers(pixel_values, layers: List[int], norm: bool) -> forward's three outputs (the same
code path, bit-identical) plus, for L = len(layers), in the order of `layers`:
    "layer_cls":          [B, L, D]
    "layer_registers":    [B, L, R, D]
    "layer_patch_tokens": [B, L, h*w, D]
the token sequence after each named block (Hugging Face: hidden_states[i + 1]), passed through
the final LayerNorm `norm` if `norm` is true (the official get_intermediate_layers(norm=True)),
raw otherwise; dtype of the weights. `layers` are absolute 0-based block indices in [0, depth),
repeats allowed; the caller resolves negative or last-n indices. An empty list or an index out of
range raises RuntimeError (from Python, the scripted module raises torch.jit.Error). The block
outputs are copies into one [B, L, 1+R+h*w, D] buffer (the outputs are views of it), taken
before the next block adds into the sequence in place.

Written for few elementwise passes on CPU (each is a memory pass and, with several intra-op
threads, a barrier): q and k are rotated together from cos/sin tables that cover the CLS and
register tokens too (cos 1, sin 0), so nothing is sliced or concatenated per block; q, k and v go
to scaled_dot_product_attention as strided views; LayerScale and the residual sum are one addcmul.
Without autograd (inference/no-grad mode, as the server runs it) the residual sum and the FFN
activation run in place; with autograd the same math runs out of place. Results equal the plain
formulation up to float32 rounding. The forward keeps no state between calls (thread-safe).
tests/bench/cpu_forward_profile.py measures it.
"""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.dinov3.config import ArchConfig


def rope_periods(head_dim: int, base: float) -> Tensor:
    """Exact float32 RoPE periods: base ** (4j / head_dim) for j < head_dim / 4."""
    exponent = torch.arange(head_dim // 4, dtype=torch.float64) * 4.0 / head_dim
    return (base ** exponent).to(torch.float32)


class RopeEmbedding(nn.Module):
    """2-D rotary embedding with 'separate' coordinate normalisation (patch centres in [-1, 1])."""

    def __init__(self, head_dim: int, base: float) -> None:
        super().__init__()
        self.register_buffer("periods", rope_periods(head_dim, base))

    def forward(self, grid_h: int, grid_w: int, num_prefix: int) -> Tuple[Tensor, Tensor]:
        """cos and sin, each [num_prefix + grid_h*grid_w, 1, 1, head_dim] float32. The
        num_prefix leading rows (CLS, registers) are cos 1, sin 0: those tokens stay as they are."""
        periods = self.periods.float()
        ys = (torch.arange(grid_h, dtype=torch.float32, device=periods.device) + 0.5) / grid_h
        xs = (torch.arange(grid_w, dtype=torch.float32, device=periods.device) + 0.5) / grid_w
        ys = (2.0 * ys - 1.0)[:, None].expand(grid_h, grid_w).reshape(-1)
        xs = (2.0 * xs - 1.0)[None, :].expand(grid_h, grid_w).reshape(-1)
        two_pi = 2.0 * math.pi
        angles = torch.cat(
            [two_pi * ys[:, None] / periods[None, :], two_pi * xs[:, None] / periods[None, :]],
            dim=-1)
        angles = torch.cat([angles, angles], dim=-1)
        prefix = torch.zeros(num_prefix, angles.size(1), dtype=angles.dtype, device=angles.device)
        angles = torch.cat([prefix, angles], dim=0)[:, None, None, :]
        return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x * cos + rotate_half(x) * sin in float32, rotate_half(x) = [-x[Dh/2:], x[:Dh/2]].

    x [B, N, ..., Dh] in any float dtype (a strided view is fine); cos, sin [N, 1, .., Dh]
    float32 (both halves of the last dim are equal). Returns a new float32 tensor. Three passes
    (a product, then one addcmul_ per half in place) and no rotate_half copy or cat.
    """
    x = x.float()
    half = x.size(-1) // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    sin_half = sin[..., :half]
    out = x * cos
    out[..., :half].addcmul_(x2, sin_half, value=-1.0)
    out[..., half:].addcmul_(x1, sin_half)
    return out


class Attention(nn.Module):
    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim, bias=config.qkv_bias)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        # q and k rotated together, in float32; [B, N, 2, heads, Dh]. All three are handed to
        # SDPA as [B, heads, N, Dh] strided views (no copies); its CPU kernel reads strides.
        qk = apply_rope(qkv[:, :, :2], cos, sin).to(x.dtype)
        q = qk[:, :, 0].transpose(1, 2)
        k = qk[:, :, 1].transpose(1, 2)
        v = qkv[:, :, 2].transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    """fc2(GELU-erf(fc1 x)). Without autograd the GELU runs in place on fc1's output: one big
    buffer fewer to allocate (and, with glibc malloc, to fault in again) per block."""

    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.embed_dim, config.ffn_hidden)
        self.fc2 = nn.Linear(config.ffn_hidden, config.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.fc1(x)
        if torch.is_grad_enabled():  # autograd (and TorchScript's autodiff) refuse in-place ops
            return self.fc2(F.gelu(hidden))
        return self.fc2(torch.ops.aten.gelu_(hidden))


class SwiGLU(nn.Module):
    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.embed_dim, config.ffn_hidden)
        self.w2 = nn.Linear(config.embed_dim, config.ffn_hidden)
        self.w3 = nn.Linear(config.ffn_hidden, config.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """w3(silu(w1 x) * w2 x); without autograd the SiLU and the product run in place."""
        if torch.is_grad_enabled():
            return self.w3(F.silu(self.w1(x)) * self.w2(x))
        hidden = F.silu(self.w1(x), inplace=True)
        return self.w3(hidden.mul_(self.w2(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


def add_scaled(x: Tensor, y: Tensor, gamma: Tensor) -> Tensor:
    """x + y * gamma (residual + LayerScale) in one pass. Without autograd it runs in place on x,
    which in a Block is always this forward's own activation (the embedding cat made the first)."""
    if torch.is_grad_enabled():
        return torch.addcmul(x, y, gamma)
    return x.addcmul_(y, gamma)


class Block(nn.Module):
    """Pre-norm transformer block: x += ls1*attn(norm1 x); x += ls2*ffn(norm2 x)."""

    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.attn = Attention(config)
        self.ls1 = LayerScale(config.embed_dim)
        self.norm2 = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(config) if config.ffn == "mlp" else SwiGLU(config)
        self.ls2 = LayerScale(config.embed_dim)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        x = add_scaled(x, self.attn(self.norm1(x), cos, sin), self.ls1.gamma)
        return add_scaled(x, self.mlp(self.norm2(x)), self.ls2.gamma)


class PatchEmbed(nn.Module):
    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, config.embed_dim, config.patch_size, stride=config.patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoV3ViT(nn.Module):
    """See the module docstring for the forward and forward_layers contracts."""

    def __init__(self, config: ArchConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        self.num_registers = config.num_registers
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        self.storage_tokens = nn.Parameter(torch.zeros(1, config.num_registers, config.embed_dim))
        self.patch_embed = PatchEmbed(config)
        self.rope_embed = RopeEmbedding(config.head_dim, config.rope_base)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.depth)])
        self.norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)

    def forward(self, pixel_values: Tensor) -> Dict[str, Tensor]:
        x, cos, sin = self._embed(pixel_values)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self._split(self.norm(x))

    @torch.jit.export
    def forward_layers(self, pixel_values: Tensor, layers: List[int],
                       norm: bool) -> Dict[str, Tensor]:
        """forward's three outputs plus the outputs of the blocks in `layers` (module docstring)."""
        self._check_layers(layers)
        x, cos, sin = self._embed(pixel_values)
        kept = x.new_empty([x.size(0), len(layers), x.size(1), x.size(2)])
        for index, block in enumerate(self.blocks):
            x = block(x, cos, sin)
            self._keep_layer(x, index, layers, norm, kept)
        out = self._split(self.norm(x))
        num_prefix = 1 + self.num_registers
        out["layer_cls"] = kept[:, :, 0]
        out["layer_registers"] = kept[:, :, 1:num_prefix]
        out["layer_patch_tokens"] = kept[:, :, num_prefix:]
        return out

    def _check_layers(self, layers: List[int]) -> None:
        if len(layers) == 0:
            raise RuntimeError("forward_layers: layers must name at least one block")
        depth = len(self.blocks)
        for layer in layers:
            if layer < 0 or layer >= depth:
                raise RuntimeError("forward_layers: block index " + str(layer) + " is out of "
                                   "range [0, " + str(depth) + ") (absolute, 0-based)")

    def _keep_layer(self, x: Tensor, index: int, layers: List[int], norm: bool,
                    kept: Tensor) -> None:
        """Copies block `index`'s output x (final-normed if `norm`) into every slot of `kept`
        [B, L, T, D] that asks for it. A copy, never x itself: the next block adds into x in
        place when autograd is off."""
        if index not in layers:
            return
        tokens = self.norm(x) if norm else x
        for slot in range(len(layers)):
            if layers[slot] == index:
                kept.select(1, slot).copy_(tokens)

    def _embed(self, pixel_values: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Checks the input; returns the token sequence [B, 1+R+h*w, D] entering block 0 (CLS,
        registers, patches) and the RoPE cos/sin tables for it."""
        if pixel_values.dim() != 4 or pixel_values.size(1) != 3:
            raise RuntimeError("pixel_values must have shape [B, 3, H, W]")
        height, width = pixel_values.size(2), pixel_values.size(3)
        if height % self.patch_size != 0 or width % self.patch_size != 0 or height == 0 \
                or width == 0:
            raise RuntimeError("pixel_values height and width must be positive multiples of "
                               "the patch size")
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        x = self.patch_embed(pixel_values.to(self.cls_token.dtype))
        batch = x.size(0)
        x = torch.cat([self.cls_token.expand(batch, -1, -1),
                       self.storage_tokens.expand(batch, -1, -1), x], dim=1)
        cos, sin = self.rope_embed(grid_h, grid_w, 1 + self.num_registers)
        return x, cos, sin

    def _split(self, x: Tensor) -> Dict[str, Tensor]:
        """forward's outputs: views of the final-normed sequence x [B, 1+R+N, D]."""
        num_prefix = 1 + self.num_registers
        return {
            "cls": x[:, 0],
            "registers": x[:, 1:num_prefix],
            "patch_tokens": x[:, num_prefix:],
        }


def random_init(model: DinoV3ViT, seed: int) -> DinoV3ViT:
    """Deterministic random weights with healthy scales (an untrained model of the real shape).

    LayerScale and norm weights get non-trivial values so that parity tests exercise them.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gamma"):
                param.copy_(0.1 + 0.9 * torch.rand(param.shape, generator=gen))
            elif "norm" in name and name.endswith("weight"):
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=gen))
            elif name.endswith("bias") or param.dim() == 1:
                param.copy_(0.02 * torch.randn(param.shape, generator=gen))
            else:
                fan_in = param[0].numel() if param.dim() > 1 else param.numel()
                std = 0.02 if name in ("cls_token", "storage_tokens") else fan_in ** -0.5
                param.copy_(std * torch.randn(param.shape, generator=gen))
        for block in model.blocks:
            if block.attn.qkv.bias is not None:
                dim = block.attn.qkv.bias.numel() // 3
                block.attn.qkv.bias[dim:2 * dim] = 0.0  # DINOv3 has no K bias
    return model
