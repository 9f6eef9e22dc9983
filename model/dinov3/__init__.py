"""The DINOv3 ViT family as a TorchScript-friendly PyTorch module.

Public entry points:
  ArchConfig, PRESETS, preset()      -- architecture descriptions (config.py)
  DinoV3ViT                          -- the network (vit.py)
  load_hf_dir(), load_meta_checkpoint() -- checkpoint loaders (checkpoints.py)
  export_torchscript()               -- writes the archive the server loads (exporter.py)
"""
from model.dinov3.config import ArchConfig, PRESETS, preset
from model.dinov3.vit import DinoV3ViT

__all__ = ["ArchConfig", "PRESETS", "preset", "DinoV3ViT"]
