"""Proof that the server batches: 32 concurrent clients against max_batch_size=8 run in batches
larger than 1 (Timing.batch_size, read back from the responses, and the server's own log), and
every client gets exactly its own embeddings: each equals the TorchScript module run on that
image alone within 1e-5 (float32).
"""
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.integration.python.server_process import CALL_SECONDS, ROOT, running_server
from dinov3_client import EmbeddingResult  # noqa: E402  (path set by server_process)

CLIENTS = 32
MAX_ABS = 1e-5
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batching")
    model = str(tmp / "model.pt")
    subprocess.run([sys.executable, "-m", "model.export", "--random", "--variant", "vits16",
                    "--depth", "2", "--seed", "4", "--output", model],
                   cwd=ROOT, check=True, capture_output=True)
    flags = ["--max_batch_size=8", "--max_queue_delay_ms=50", "--max_queue_size=64"]
    with running_server(model, str(tmp / "server.log"), *flags) as (_, client):
        yield client, torch.jit.load(model)


def alone(module, pixels):
    """The module on one image, preprocessed as the server does (224x224 resize is identity)."""
    x = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() * (1.0 / 255.0)
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    with torch.inference_mode():
        out = module((x - MEAN) / STD)
    return out["cls"][0].numpy(), out["patch_tokens"][0].mean(0).numpy()


def test_concurrent_clients_are_batched_and_get_their_own_results(batching_server):
    client, module = batching_server
    images = [np.random.default_rng(i).integers(0, 256, (224, 224, 3), dtype=np.uint8)
              for i in range(CLIENTS)]
    results, batch_sizes, errors = [None] * CLIENTS, [0] * CLIENTS, []
    start = threading.Barrier(CLIENTS)

    def call(i):
        try:
            start.wait()
            request = client.build_request([images[i]], outputs=("cls", "pooled"),
                                           request_id=f"client-{i}")
            response = client.stub.Embed(request, timeout=CALL_SECONDS)
            assert response.request_id == f"client-{i}"
            results[i] = EmbeddingResult.from_proto(response.embeddings[0])
            batch_sizes[i] = response.timing.batch_size
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    print(f"batch sizes seen by the clients: {sorted(batch_sizes)}")
    assert max(batch_sizes) > 1, "no request was batched with another"
    assert all(1 <= b <= 8 for b in batch_sizes)
    for i, result in enumerate(results):
        cls, pooled = alone(module, images[i])
        assert np.abs(result.cls - cls).max() <= MAX_ABS, f"client {i} cls"
        assert np.abs(result.pooled - pooled).max() <= MAX_ABS, f"client {i} pooled"
