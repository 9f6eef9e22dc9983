"""Export conveniences for large checkpoints: the peak-memory line printed before loading, the
progress line (drawn only when stderr is a terminal and the checkpoint is large or sharded), and
loading sharded or memory-mapped checkpoints into exactly the state of the plain ones."""
import io
import os
import pty
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from model import export as export_cli
from model.dinov3.checkpoints import (
    LARGE_CHECKPOINT_BYTES, Progress, hf_tensor_sizes, load_hf_dir, load_meta_checkpoint,
    meta_tensor_sizes, progress_enabled)
from model.dinov3.config import preset
from model.dinov3.vit import DinoV3ViT, random_init
from tests.unit.model.hf_reference import random_hf_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The same random vits16 (depth 2) as one model.safetensors and as 1 MB shards."""
    root = tmp_path_factory.mktemp("progress")
    model = random_hf_model("vits16", seed=21, depth=2)
    model.save_pretrained(root / "single")
    model.save_pretrained(root / "sharded", max_shard_size="1MB")
    shards = [n for n in os.listdir(root / "sharded") if n.endswith(".safetensors")]
    assert len(shards) > 1 and (root / "sharded" / "model.safetensors.index.json").exists()
    return root / "single", root / "sharded"


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_sharded_folder_loads_the_same_state(folders):
    single, sharded = folders
    config_a, state_a, _ = load_hf_dir(str(single))
    config_b, state_b, _ = load_hf_dir(str(sharded))
    assert config_a == config_b and state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def test_header_sizes_match_the_loaded_tensors(folders):
    single, sharded = folders
    loaded = load_file(str(single / "model.safetensors"))
    expected = sorted((k, v.dtype, v.numel()) for k, v in loaded.items())
    assert sorted(hf_tensor_sizes(str(single))) == expected
    assert sorted(hf_tensor_sizes(str(sharded))) == expected


def test_peak_memory_line(folders, tmp_path, capsys):
    """Printed before loading, on stderr; its parts computed here from the loaded tensors."""
    single, _ = folders
    loaded = load_file(str(single / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in loaded.values())
    stored = sum(v.nbytes for v in loaded.values())
    qkv = sum(v.nbytes for k, v in loaded.items() if "_proj." in k and "attention." in k
              and "o_proj" not in k)
    numel = sum(v.numel() for v in loaded.values())
    largest = max(v.numel() for v in loaded.values())
    parts = export_cli.peak_memory(hf_tensor_sizes(str(single)), "bfloat16", fuses_qkv=True)
    assert parts == {"checkpoint": stored, "qkv_fuse": qkv, "cast": numel * 2, "int8_copy": 0,
                     "hash_copy": largest * 2, "peak": stored + qkv + numel * 2 + largest * 2}
    assert export_cli.main(["--hf-dir", str(single), "--dtype", "bfloat16",
                            "--output", str(tmp_path / "m.pt")]) == 0
    err = capsys.readouterr().err
    print(err)
    assert f"peak memory estimate: {parts['peak'] / 2**30:.2f} GiB (checkpoint " in err
    assert "\r" not in err and "loading" not in err  # capsys' stderr is not a terminal


def test_int8_counts_the_quantisation_copy(folders):
    single, _ = folders
    sizes = hf_tensor_sizes(str(single))
    parts = export_cli.peak_memory(sizes, "int8", fuses_qkv=True)
    assert parts["int8_copy"] == 5 * sum(t.numel for t in sizes) and parts["cast"] == 0


def test_random_export_prints_no_estimate(tmp_path, capsys):
    assert export_cli.main(["--random", "--variant", "vits16", "--depth", "1",
                            "--output", str(tmp_path / "r.pt")]) == 0
    assert capsys.readouterr().err == ""


def test_progress_enabled_only_on_a_terminal_for_large_or_sharded():
    small = LARGE_CHECKPOINT_BYTES - 1
    assert not progress_enabled(small, 1, FakeTerminal(True))
    assert progress_enabled(small, 3, FakeTerminal(True))
    assert progress_enabled(LARGE_CHECKPOINT_BYTES, 1, FakeTerminal(True))
    assert not progress_enabled(10 * LARGE_CHECKPOINT_BYTES, 3, FakeTerminal(False))


def test_progress_draws_per_percent_and_ends_the_line():
    stream = FakeTerminal(True)
    progress = Progress(1000, True, stream)
    for _ in range(100):
        progress.update("x.safetensors", 10)
    progress.close()
    text = stream.getvalue()
    assert text.count("\r") == 100 and text.endswith("\n")
    assert "loading x.safetensors: 100%" in text
    quiet = FakeTerminal(True)
    Progress(1000, False, quiet).update("x", 1000)
    assert quiet.getvalue() == ""


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO once the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_progress_on_a_real_terminal(folders, tmp_path):
    """A sharded folder exported with stderr on a pseudo-terminal draws the progress line."""
    _, sharded = folders
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "model.export", "--hf-dir", str(sharded),
                             "--output", str(tmp_path / "tty.pt")], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = read_all(master).decode()
    os.close(master)
    assert proc.wait(timeout=120) == 0, err
    proc.stdout.close()
    print(err)
    assert "peak memory estimate:" in err
    assert "\rloading model-0000" in err and "100% (" in err


def test_meta_checkpoint_memory_mapped_and_legacy(tmp_path, capsys):
    """A .pth loads memory-mapped (sizes known before loading) and a legacy-format one in one
    piece (sizes unknown, said so); both give the tensors that were saved."""
    state = random_init(DinoV3ViT(preset("vits16", 1)), 3).state_dict()
    modern, legacy = tmp_path / "modern.pth", tmp_path / "legacy.pth"
    torch.save(state, modern)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert sorted(meta_tensor_sizes(str(modern))) == sorted(
        (k, v.dtype, v.numel()) for k, v in state.items())
    assert meta_tensor_sizes(str(legacy)) is None
    for path in (modern, legacy):
        _, loaded = load_meta_checkpoint(str(path))
        for key, value in state.items():
            assert torch.equal(loaded[key], value), key
    assert export_cli.main(["--meta-checkpoint", str(legacy), "--output",
                            str(tmp_path / "l.pt")]) == 0
    assert "peak memory estimate: unknown" in capsys.readouterr().err
