"""Floating-point operations of one DINOv3 forward, from the architecture (a multiply-add is 2).

Counted: the patch-embedding convolution, every Linear layer (q/k/v, the output projection, the
FFN's two or three matrices) and the two attention matmuls (Q K^T and the weights times V).
Not counted: norms, softmax, activations, RoPE, LayerScale, additions (a few % of the total).

    forward_flops(preset("vits16"), 224, 224)  # 9.39e9 per image
"""


def tokens(config, height, width):
    """(patches, tokens): the patch grid and the sequence with CLS and register tokens."""
    patches = (height // config.patch_size) * (width // config.patch_size)
    return patches, patches + 1 + config.num_registers


def forward_flops(config, height, width, batch=1):
    """FLOPs of a forward of `batch` images of height x width (config: model.dinov3 ArchConfig,
    or anything with its fields)."""
    d, hidden, p = config.embed_dim, config.ffn_hidden, config.patch_size
    patches, n = tokens(config, height, width)
    patch_embed = 2 * patches * (3 * p * p) * d
    ffn_matrices = 3 if config.ffn == "swiglu" else 2
    per_block = (2 * n * d * 3 * d            # q, k, v
                 + 2 * n * d * d              # output projection
                 + 2 * 2 * n * n * d          # Q K^T and weights x V, all heads
                 + ffn_matrices * 2 * n * d * hidden)
    return batch * (patch_embed + config.depth * per_block)
