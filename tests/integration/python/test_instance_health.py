"""A model instance that really breaks takes the server's health to NOT_SERVING, while the
server stays up and keeps answering every call (INTERNAL, no internals leaked).

The model here follows the server's contract and works until it sees a white image; from then on
every forward fails, the server's synthetic health probe included (a broken device or a corrupted
model state). test_faults.py shows the other side: inputs the model cannot take (it fails on them
but still answers the probe) never change health.
"""
import time
from typing import Dict

import numpy as np
import pytest
import torch

from tests.integration.python.fault_helpers import save_contract_model
from tests.integration.python.server_process import export_random_model, running_server, tail
from dinov3_client import EmbeddingError  # noqa: E402  (path set by server_process)

MAX_CONSECUTIVE_FAILURES = 3  # server/engine/model_engine.h


class BreaksOnWhite(torch.nn.Module):
    """Contract-following outputs until a white image arrives; every forward fails after it."""

    def __init__(self, dim: int, registers: int, patch: int):
        super().__init__()
        self.proj = torch.nn.Linear(3, dim)
        self.register_buffer("broken", torch.zeros(1))
        self.num_registers = registers
        self.patch = patch

    def forward(self, pixel_values: torch.Tensor) -> Dict[str, torch.Tensor]:
        if bool((pixel_values.flatten(1).min(1).values > 2.0).any()):
            self.broken.fill_(1.0)
        if bool(self.broken.item() > 0):
            raise RuntimeError("BROKEN-INSTANCE-SECRET device lost")
        tokens = self.proj(torch.nn.functional.avg_pool2d(pixel_values, self.patch)
                           .flatten(2).transpose(1, 2))
        cls = tokens.mean(1)
        registers = torch.stack([cls for _ in range(self.num_registers)], 1)
        return {"cls": cls, "registers": registers, "patch_tokens": tokens}


@pytest.fixture
def broken_model(tmp_path):
    return save_contract_model(
        lambda m: BreaksOnWhite(m["embed_dim"], m["num_registers"], m["patch_size"]),
        export_random_model(tmp_path, seed=5), tmp_path / "breaks_on_white.pt")


def embed_code(client, image):
    try:
        client.embed([image])
        return "OK", ""
    except EmbeddingError as e:
        return e.code.name, e.details


def test_a_broken_instance_turns_health_not_serving_and_the_server_keeps_answering(
        broken_model, tmp_path):
    log = tmp_path / "server.log"
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    white = np.full((32, 32, 3), 255, np.uint8)
    with running_server(broken_model, log, "--max_batch_size=1") as (_, client):
        assert embed_code(client, noise) == ("OK", "")
        assert client.health() == "SERVING"
        codes = [embed_code(client, white)]
        codes += [embed_code(client, noise) for _ in range(MAX_CONSECUTIVE_FAILURES - 1)]
        for code, details in codes:
            assert code == "INTERNAL", codes
            assert "SECRET" not in details and "Traceback" not in details, details
        deadline = time.monotonic() + 30
        while client.health() != "NOT_SERVING":
            assert time.monotonic() < deadline, f"still SERVING:\n{tail(log)}"
            time.sleep(0.1)
        assert client.health("dinov3.v1.EmbeddingService") == "NOT_SERVING"
        # Still up: every call is answered, with the same error and no internals.
        assert embed_code(client, noise)[0] == "INTERNAL"
        assert client.model_info().embed_dim == 384
    text = tail(log, 10**6)
    # The served model is named after its file, breaks_on_white.pt.
    assert "health probe" in text, text[-3000:]
    assert ("model 'breaks_on_white': a model instance keeps failing: its health NOT_SERVING"
            in text), text[-3000:]
