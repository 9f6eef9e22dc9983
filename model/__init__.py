"""DINOv3 model tooling: the scriptable network, checkpoint loaders and the export CLI."""
