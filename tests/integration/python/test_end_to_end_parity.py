"""End to end: image bytes into the server, vectors out, against the seed code's Python path
(`AutoImageProcessor` + `AutoModel` from the same Hugging Face folder) on the same weights.

The weights are a randomly initialised full-depth vits16 (real weights are gated), saved as a
Hugging Face folder with its preprocessor config, exported with our CLI and served by the real
binary. Tolerance: cosine similarity >= 0.9999 for CLS (= pooler_output), pooled (mean patch
token) and every patch token, for PNG and JPEG inputs of several sizes and aspect ratios.
"""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, DINOv3ViTImageProcessor

from tests.integration.python.server_process import ROOT, running_server
from tests.integration.python.synthetic_images import photo_like, save
from tests.unit.model.hf_reference import random_hf_model

MIN_COSINE = 0.9999
CASES = [(224, 224, "PNG"), (480, 640, "JPEG"), (517, 333, "PNG"), (200, 1000, "JPEG")]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    random_hf_model("vits16", seed=21, depth=12).save_pretrained(folder)
    DINOv3ViTImageProcessor().save_pretrained(folder)
    model_path = str(folder / "served.pt")
    subprocess.run([sys.executable, "-m", "model.export", "--hf-dir", str(folder), "--output",
                    model_path], cwd=ROOT, check=True, capture_output=True)
    with running_server(model_path, str(folder / "server.log")) as (_, client):
        yield (client, AutoModel.from_pretrained(folder).eval(),
               AutoImageProcessor.from_pretrained(folder))


def cosine(a, b):
    a, b = torch.as_tensor(np.asarray(a, np.float64)), torch.as_tensor(np.asarray(b, np.float64))
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.mark.parametrize("height,width,fmt", CASES)
def test_server_matches_processor_and_automodel(served, tmp_path, height, width, fmt):
    client, model, processor = served
    path = save(photo_like(height, width, seed=height + width), str(tmp_path / f"x.{fmt}"), fmt)
    with open(path, "rb") as f:
        got = client.embed([f.read()], outputs=("cls", "pooled", "patch_tokens"))[0]
    inputs = processor(images=Image.open(path).convert("RGB"), return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs)
    patches = out.last_hidden_state[0, 1 + model.config.num_register_tokens:]
    checks = {"cls": cosine(got.cls, out.pooler_output[0]),
              "pooled": cosine(got.pooled, patches.mean(0)),
              "patch_tokens": cosine(got.patch_tokens, patches)}
    for name, cos in checks.items():
        print(f"{fmt} {height}x{width} {name}: min cosine {cos.min().item():.7f}")
        assert cos.min().item() >= MIN_COSINE, name


@pytest.mark.parametrize("layer_norm", [True, False])
@pytest.mark.parametrize("height,width,fmt", CASES[1:3])
def test_intermediate_layers_match_hidden_states(served, tmp_path, height, width, fmt,
                                                 layer_norm):
    """Embedding.layers against transformers' output_hidden_states: hidden state i + 1 is block
    i's output; with layer_norm the model's final norm is applied to it."""
    client, model, processor = served
    path = save(photo_like(height, width, seed=height * width), str(tmp_path / f"x.{fmt}"), fmt)
    asked = [-1, 0, 5, -4]  # out of order, negative from the end (12 blocks)
    with open(path, "rb") as f:
        [got] = client.embed([f.read()], outputs=("cls", "pooled", "registers", "patch_tokens"),
                             layers=asked, layer_norm=layer_norm)
    inputs = processor(images=Image.open(path).convert("RGB"), return_tensors="pt")
    with torch.no_grad():
        hidden = model(**inputs, output_hidden_states=True).hidden_states
    registers = model.config.num_register_tokens
    assert [layer.layer for layer in got.layers] == [11, 0, 5, 8]
    for layer in got.layers:
        tokens = hidden[layer.layer + 1][0]
        if layer_norm:
            with torch.no_grad():
                tokens = model.norm(tokens)
        patches = tokens[1 + registers:]
        checks = {"cls": cosine(layer.cls, tokens[0]),
                  "registers": cosine(layer.registers, tokens[1:1 + registers]),
                  "pooled": cosine(layer.pooled, patches.mean(0)),
                  "patch_tokens": cosine(layer.patch_tokens, patches)}
        for name, cos in checks.items():
            print(f"{fmt} {height}x{width} norm={layer_norm} layer {layer.layer} {name}: "
                  f"min cosine {cos.min().item():.7f}")
            assert cos.min().item() >= MIN_COSINE, (layer.layer, name)
