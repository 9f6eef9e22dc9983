"""Checkpoints that do not fit are rejected with a message naming the key and what was expected."""
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from model import export as export_cli
from model.dinov3.checkpoints import CheckpointError, load_hf_dir, load_meta_checkpoint
from tests.unit.model.hf_reference import random_hf_model


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    random_hf_model("vits16", seed=1, depth=1).save_pretrained(folder)
    return folder


def rewrite(src, dst, edit_tensors=None, edit_config=None):
    dst.mkdir()
    config = json.loads((src / "config.json").read_text())
    tensors = load_file(src / "model.safetensors")
    if edit_config:
        edit_config(config)
    if edit_tensors:
        edit_tensors(tensors)
    (dst / "config.json").write_text(json.dumps(config))
    save_file(tensors, dst / "model.safetensors")
    return dst


def test_missing_key_is_named(hf_folder, tmp_path):
    bad = rewrite(hf_folder, tmp_path / "bad",
                  edit_tensors=lambda t: t.pop("layer.0.layer_scale2.lambda1"))
    message = r"missing key 'layer\.0\.layer_scale2\.lambda1' \(expected shape \[384\]\)"
    with pytest.raises(CheckpointError, match=message):
        load_hf_dir(str(bad))


def test_unexpected_key_is_named(hf_folder, tmp_path):
    def add(t):
        t["layer.0.attention.extra.weight"] = torch.zeros(2)
    bad = rewrite(hf_folder, tmp_path / "bad", edit_tensors=add)
    with pytest.raises(CheckpointError, match=r"unexpected key 'layer\.0\.attention\.extra"):
        load_hf_dir(str(bad))


def test_wrong_shape_is_named(hf_folder, tmp_path):
    def shrink(t):
        t["norm.weight"] = torch.ones(10)
    bad = rewrite(hf_folder, tmp_path / "bad", edit_tensors=shrink)
    with pytest.raises(CheckpointError, match=r"'norm\.weight' has shape \[10\], expected \[384\]"):
        load_hf_dir(str(bad))


def test_unknown_variant(hf_folder, tmp_path):
    bad = rewrite(hf_folder, tmp_path / "bad",
                  edit_config=lambda c: c.update(intermediate_size=1000))
    with pytest.raises(CheckpointError, match="no DINOv3 variant has hidden_size=384"):
        load_hf_dir(str(bad))


def test_variant_mismatch(hf_folder):
    with pytest.raises(CheckpointError, match="--variant vitb16 given but config.json describes"):
        load_hf_dir(str(hf_folder), "vitb16")


def test_not_dinov3_config(hf_folder, tmp_path):
    bad = rewrite(hf_folder, tmp_path / "bad", edit_config=lambda c: c.update(model_type="vit"))
    with pytest.raises(CheckpointError, match="model_type is 'vit'"):
        load_hf_dir(str(bad))


def test_folder_without_config(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_hf_dir(str(tmp_path))


def test_meta_missing_tensor(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 384)}, path)
    with pytest.raises(CheckpointError, match="missing key 'blocks.0.attn.qkv.weight'"):
        load_meta_checkpoint(str(path))


def meta_state(dim=384, hidden=1536):
    return {"cls_token": torch.zeros(1, 1, dim), "storage_tokens": torch.zeros(1, 4, dim),
            "patch_embed.proj.weight": torch.zeros(dim, 3, 16, 16),
            "blocks.0.attn.qkv.weight": torch.zeros(3 * dim, dim),
            "blocks.0.mlp.fc1.weight": torch.zeros(hidden, dim)}


def test_meta_unknown_width(tmp_path):
    path = tmp_path / "x.pth"
    torch.save(meta_state(dim=512, hidden=2048), path)
    with pytest.raises(CheckpointError, match="no DINOv3 variant has embed_dim=512"):
        load_meta_checkpoint(str(path))


def test_meta_incomplete_block_names_the_key(tmp_path):
    path = tmp_path / "x.pth"
    torch.save(meta_state(), path)
    with pytest.raises(CheckpointError, match=r"missing key 'patch_embed\.proj\.bias'"):
        load_meta_checkpoint(str(path))


def test_meta_not_a_checkpoint(tmp_path):
    path = tmp_path / "x.pth"
    path.write_bytes(b"definitely not a pickle")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_meta_checkpoint(str(path))


def test_cli_reports_error_and_exits_2(hf_folder, tmp_path, capsys):
    bad = rewrite(hf_folder, tmp_path / "bad",
                  edit_tensors=lambda t: t.pop("embeddings.register_tokens"))
    code = export_cli.main(["--hf-dir", str(bad), "--output", str(tmp_path / "x.pt")])
    assert code == 2
    assert "missing key 'embeddings.register_tokens'" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
