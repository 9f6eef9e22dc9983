"""Every preset has the shapes of the real architecture: the transformers model of the same
config (built on the meta device, so even 7B costs no memory) maps onto it key for key, and the
parameter counts match the published sizes."""
import dataclasses

import pytest
import torch
from transformers import DINOv3ViTModel

from model.dinov3.checkpoints import hf_to_internal, validate_state_dict
from model.dinov3.config import PRESETS
from tests.unit.model.hf_reference import hf_config_for

# Published backbone sizes (DINOv3 model card), in millions of parameters.
PUBLISHED_MILLIONS = {"vits16": 21, "vits16plus": 29, "vitb16": 86, "vitl16": 300,
                      "vith16plus": 840, "vit7b16": 6716}


@pytest.mark.parametrize("variant", sorted(PRESETS))
def test_preset_matches_reference_architecture(variant):
    config = PRESETS[variant]
    with torch.device("meta"):
        reference = DINOv3ViTModel(hf_config_for(config))
    state = {k.removeprefix("model."): v for k, v in reference.state_dict().items()}
    ours = hf_to_internal(state, config, "reference")
    validate_state_dict(ours, config, "reference")
    params = sum(v.numel() for k, v in ours.items() if k != "rope_embed.periods")
    reference_params = sum(p.numel() for n, p in reference.named_parameters()
                           if not n.endswith("mask_token"))
    if not config.qkv_bias:
        assert params == reference_params
    else:  # we carry an explicit zero K bias per block
        assert params == reference_params + config.depth * config.embed_dim
    if variant in PUBLISHED_MILLIONS:
        assert abs(params / 1e6 - PUBLISHED_MILLIONS[variant]) <= 0.03 * PUBLISHED_MILLIONS[variant]


def test_7b_has_no_qkv_bias_and_swiglu_64():
    config = PRESETS["vit7b16"]
    assert not config.qkv_bias and config.ffn == "swiglu" and config.ffn_hidden % 64 == 0


def test_reduced_depth_keeps_widths():
    small = dataclasses.replace(PRESETS["vitl16"], depth=2)
    assert (small.embed_dim, small.num_heads, small.ffn_hidden) == (1024, 16, 4096)
