"""Writes the fixtures of the C++ model runtime tests into OUT_DIR (run by CTest, never committed).

  model.pt          a random vits16 with 2 blocks, exported with the real exporter
  model_bf16.pt     the same weights exported in bfloat16
  model_int8.pt     the same weights exported in int8 (dynamically quantised Linear layers)
  expected.pt       inputs and the Python TorchScript outputs for two resolutions, as buffers
                    named {a,b}_{input,cls,registers,patch_tokens} of a scripted container
  not_dinov3.pt     a valid TorchScript archive without dinov3.json
  mismatched.pt     model.pt whose metadata claims embed_dim 768
  bad_metadata.pt   model.pt whose metadata lacks the 'variant' field

Usage: python tests/unit/model/runtime/make_fixtures.py OUT_DIR
"""
import json
import os
import sys

import torch

from model import export as export_cli
from model.dinov3.exporter import METADATA_FILE

CASES = {"a": (2, 224, 224), "b": (1, 160, 320)}


class TensorContainer(torch.nn.Module):
    def __init__(self, tensors):
        super().__init__()
        for name, tensor in tensors.items():
            self.register_buffer(name, tensor)

    def forward(self) -> int:
        return 0


def rewrite_metadata(src: str, dst: str, edit) -> None:
    extra = {METADATA_FILE: ""}
    module = torch.jit.load(src, _extra_files=extra)
    meta = json.loads(extra[METADATA_FILE])
    edit(meta)
    torch.jit.save(module, dst, _extra_files={METADATA_FILE: json.dumps(meta)})


def main(out_dir: str) -> None:
    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, "model.pt")
    assert export_cli.main(["--random", "--variant", "vits16", "--depth", "2", "--seed", "3",
                            "--output", model_path]) == 0
    assert export_cli.main(["--random", "--variant", "vits16", "--depth", "2", "--seed", "3",
                            "--dtype", "bfloat16",
                            "--output", os.path.join(out_dir, "model_bf16.pt")]) == 0
    assert export_cli.main(["--random", "--variant", "vits16", "--depth", "2", "--seed", "3",
                            "--dtype", "int8",
                            "--output", os.path.join(out_dir, "model_int8.pt")]) == 0
    scripted = torch.jit.load(model_path)
    tensors = {}
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for case, (batch, height, width) in CASES.items():
            pixels = torch.randn(batch, 3, height, width, generator=gen)
            out = scripted(pixels)
            tensors[f"{case}_input"] = pixels
            for key in ("cls", "registers", "patch_tokens"):
                tensors[f"{case}_{key}"] = out[key].clone()
    torch.jit.script(TensorContainer(tensors)).save(os.path.join(out_dir, "expected.pt"))
    torch.jit.script(torch.nn.Linear(2, 2)).save(os.path.join(out_dir, "not_dinov3.pt"))
    rewrite_metadata(model_path, os.path.join(out_dir, "mismatched.pt"),
                     lambda m: m.update(embed_dim=768))
    rewrite_metadata(model_path, os.path.join(out_dir, "bad_metadata.pt"),
                     lambda m: m.pop("variant"))


if __name__ == "__main__":
    main(sys.argv[1])
