"""The export CLI: spellings, metadata, determinism, sharded folders and dynamic input sizes."""
import json
import os
import subprocess
import sys
import zipfile

import pytest
import torch

from model.dinov3.config import LVD_MEAN, SAT_STD
from tests.unit.model.hf_reference import export, random_hf_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def metadata(path):
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("extra/dinov3.json"))
        return json.loads(archive.read(name))


def test_random_export_metadata_and_determinism(tmp_path):
    a = export(str(tmp_path), "a.pt", "--random", "--variant", "vits16", "--depth", "1")
    b = export(str(tmp_path), "b.pt", "--random", "--variant", "vits16", "--depth", "1")
    c = export(str(tmp_path), "c.pt", "--random", "--variant", "vits16", "--depth", "1",
               "--seed", "1")
    meta = metadata(a)
    assert meta["weights_sha256"] == metadata(b)["weights_sha256"]
    assert meta["weights_sha256"] != metadata(c)["weights_sha256"]
    assert meta["untrained"] is True and meta["source"] == {"kind": "random", "seed": 0}
    assert (meta["variant"], meta["depth"], meta["embed_dim"], meta["num_heads"]) == (
        "vits16", 1, 384, 6)
    assert (meta["patch_size"], meta["num_registers"], meta["default_input_size"]) == (
        16, 4, [224, 224])
    assert meta["image_mean"] == pytest.approx(LVD_MEAN) and meta["dtype"] == "float32"


def test_satellite_weights_get_their_normalisation(tmp_path):
    path = export(str(tmp_path), "sat.pt", "--random", "--variant", "vitl16", "--depth", "1",
                  "--weights-dataset", "sat493m")
    assert metadata(path)["image_std"] == pytest.approx(SAT_STD)


def test_one_file_serves_any_size_and_batch(tmp_path):
    scripted = torch.jit.load(
        export(str(tmp_path), "m.pt", "--random", "--variant", "vits16", "--depth", "1"))
    with torch.inference_mode():
        for batch, height, width in [(1, 224, 224), (2, 160, 320), (3, 32, 48), (1, 16, 16)]:
            out = scripted(torch.randn(batch, 3, height, width))
            assert out["cls"].shape == (batch, 384)
            assert out["registers"].shape == (batch, 4, 384)
            assert out["patch_tokens"].shape == (batch, height * width // 256, 384)
        with pytest.raises(Exception, match="multiples of the patch size"):
            scripted(torch.randn(1, 3, 224, 100))


def test_sharded_folder_equals_single_file(tmp_path):
    model = random_hf_model("vits16", seed=3, depth=2)
    model.save_pretrained(tmp_path / "single")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="1MB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    one = export(str(tmp_path), "one.pt", "--hf-dir", str(tmp_path / "single"))
    many = export(str(tmp_path), "many.pt", "--hf-dir", str(tmp_path / "sharded"))
    assert metadata(one)["weights_sha256"] == metadata(many)["weights_sha256"]
    assert metadata(one)["source"]["kind"] == "huggingface"


def test_command_line_spelling(tmp_path):
    output = tmp_path / "cli.pt"
    run = subprocess.run([sys.executable, "-m", "model.export", "--random", "--variant", "vits16",
                          "--depth", "1", "--dtype", "bfloat16", "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert metadata(output)["dtype"] == "bfloat16"
    usage = subprocess.run([sys.executable, "-m", "model.export", "--random", "--output",
                            str(output)], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode == 2 and "--random needs --variant" in usage.stderr
