"""The ModelAdmin RPCs against the real dinov3-server: loading, replacing and unloading models
while the server serves, without dropping accepted work.
  - admin keys: no key UNAUTHENTICATED, an API key or a wrong key PERMISSION_DENIED, and without
    admin.api_keys_file the service is not there (UNIMPLEMENTED);
  - names that are paths are refused; a missing or corrupt file names the file and the reason,
    leaves the served models untouched, and a new name that failed is listed FAILED;
  - replace under load: a client loop keeps calling while the model is replaced by another
    export; every call succeeds, each answer is entirely the old or the new export's (its
    vectors and the export id it names), and after the switch only the new one answers;
  - unload: a request held inside the model (a gated forward) finishes with its answer after
    the unload began, new requests get NOT_FOUND at once, the default model cannot be unloaded,
    and the process's resident memory falls by most of the weights' size.
"""
import os
import threading
import time

from typing import Dict

import numpy as np
import pytest
import torch

from tests.integration.python.fault_helpers import (GateWait, SlowGate, black,
                                                    save_contract_model, write_fault_model)
from tests.integration.python.server_process import (CALL_SECONDS, export_random_model,
                                                     running_server, tail)
from tests.integration.python.test_batching import MAX_ABS, alone
from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import metrics_port
from dinov3_client import (EmbeddingClient, EmbeddingError, decode_tensor,  # noqa: E402
                           embedding_pb2)

ADMIN_KEY = "admin-key-0123456789abcdef"
API_KEY = "api-key-0123456789abcdef"


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (224, 224, 3), dtype=np.uint8)


class WaitsForItsGate(torch.nn.Module):
    """Contract outputs, but every forward (the load's warm-up too) first waits for the gate
    file (fault_helpers.GateWait): a model that stays LOADING until the test opens it."""

    def __init__(self, dim: int, registers: int, patch: int, gate_path: str):
        super().__init__()
        self.gate = GateWait(gate_path)
        self.proj = torch.nn.Linear(3, dim)
        self.num_registers = registers
        self.patch = patch

    def forward(self, pixel_values: torch.Tensor) -> Dict[str, torch.Tensor]:
        extra = self.gate()
        tokens = self.proj(torch.nn.functional.avg_pool2d(pixel_values, self.patch)
                           .flatten(2).transpose(1, 2))
        cls = tokens.mean(1) + extra
        registers = torch.stack([cls for _ in range(self.num_registers)], 1)
        return {"cls": cls, "registers": registers, "patch_tokens": tokens}


def code_of(call):
    try:
        call()
        return "OK"
    except EmbeddingError as e:
        return e.code.name


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def server_pid(config_flag):
    """The pid of the dinov3-server started with `config_flag` (unique to a test)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if config_flag.encode() in argv and any(b"dinov3-server" in a for a in argv[:1]):
            return int(pid)
    pytest.fail(f"no dinov3-server with {config_flag}")


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("exports")
    return {"v1": export_random_model(d, seed=31, depth=2, name="v1.pt"),
            "v2": export_random_model(d, seed=32, depth=2, name="v2.pt"),
            "big": export_random_model(d, seed=33, depth=6, variant="vitb16", name="big.pt")}


@pytest.fixture
def repository(tmp_path, exports):
    """A model repository: small.pt (export v2), big.pt, slow.pt (gated fault model),
    corrupt.pt (not an archive)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    os.link(exports["v2"], repo / "small.pt")
    os.link(exports["big"], repo / "big.pt")
    write_fault_model(exports["v1"], repo / "slow.pt")
    gate = SlowGate(str(repo / "gated.pt") + ".gate")
    gate.close()
    save_contract_model(lambda m: WaitsForItsGate(m["embed_dim"], m["num_registers"],
                                                  m["patch_size"], gate.path),
                        exports["v1"], repo / "gated.pt")
    (repo / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip" * 100)
    return repo


def admin_flags(tmp_path, repository, *extra):
    keys = tmp_path / "admin.keys"
    keys.write_text(ADMIN_KEY + "\n")
    config = tmp_path / "models.yaml"
    config.write_text("models:\n  - name: small\n    path: " + str(tmp_path / "small-v1.pt") +
                      "\n")
    return [f"--config={config}", f"--admin_api_keys_file={keys}",
            f"--model_repository={repository}", *extra]


@pytest.fixture
def admin_server(tmp_path, exports, repository):
    os.link(exports["v1"], tmp_path / "small-v1.pt")
    log = tmp_path / "server.log"
    flags = admin_flags(tmp_path, repository)
    with running_server(None, log, *flags) as (target, client):
        with EmbeddingClient(target, timeout=CALL_SECONDS, api_key=ADMIN_KEY) as admin:
            yield server_pid(flags[0]), client, admin, log


def states(client):
    return [(m.name, embedding_pb2.ModelStatus.State.Name(m.state)) for m in
            client.list_models()]


def test_admin_calls_need_an_admin_key(tmp_path, exports, repository):
    os.link(exports["v1"], tmp_path / "small-v1.pt")
    api_keys = tmp_path / "api.keys"
    api_keys.write_text(API_KEY + "\n")
    flags = admin_flags(tmp_path, repository, f"--api_keys_file={api_keys}")
    with running_server(None, tmp_path / "server.log", *flags, api_key=API_KEY) as (target,
                                                                                     client):
        assert code_of(lambda: client.embed([image(0)])) == "OK"
        assert code_of(lambda: client.load_model("small")) == "PERMISSION_DENIED"
        with EmbeddingClient(target, timeout=CALL_SECONDS) as anonymous:
            assert code_of(lambda: anonymous.load_model("small")) == "UNAUTHENTICATED"
            assert code_of(lambda: anonymous.unload_model("small")) == "UNAUTHENTICATED"
        with EmbeddingClient(target, timeout=CALL_SECONDS, api_key="wrong-key-0123456789") as bad:
            assert code_of(lambda: bad.load_model("small")) == "PERMISSION_DENIED"
        with EmbeddingClient(target, timeout=CALL_SECONDS, api_key=ADMIN_KEY) as admin:
            assert code_of(lambda: admin.embed([image(0)])) == "UNAUTHENTICATED"  # not an API key
            assert admin.load_model("big").model.name == "big"
        assert [m.name for m in client.list_models()] == ["small", "big"]


def test_without_admin_keys_there_is_no_admin_service(tmp_path, exports):
    with running_server(exports["v1"], tmp_path / "server.log") as (_, client):
        assert code_of(lambda: client.load_model("model")) == "UNIMPLEMENTED"


def test_bad_names_and_files_leave_the_served_models_untouched(admin_server, repository):
    _, client, admin, _ = admin_server
    before = client.embed([image(1)])[0].cls
    for name in ["../small", "a/b", "..", "", "x" * 65]:
        with pytest.raises(EmbeddingError) as e:
            admin.load_model(name)
        assert e.value.code.name == "INVALID_ARGUMENT" and "name" in e.value.details, name
    with pytest.raises(EmbeddingError) as e:
        admin.load_model("missing")
    assert e.value.code.name == "NOT_FOUND"
    assert str(repository / "missing.pt") in e.value.details
    with pytest.raises(EmbeddingError) as e:
        admin.load_model("corrupt")
    assert e.value.code.name == "INVALID_ARGUMENT", e.value.details
    assert str(repository / "corrupt.pt") in e.value.details
    listed = {m.name: m for m in client.list_models()}
    assert embedding_pb2.ModelStatus.State.Name(listed["corrupt"].state) == "FAILED"
    assert "corrupt.pt" in listed["corrupt"].message
    assert embedding_pb2.ModelStatus.State.Name(listed["small"].state) == "READY"
    assert code_of(lambda: client.embed([image(1)], model="corrupt")) == "NOT_FOUND"
    assert admin.unload_model("corrupt").seconds == 0  # a failed load is forgotten
    assert "corrupt" not in [m.name for m in client.list_models()]
    np.testing.assert_array_equal(client.embed([image(1)])[0].cls, before)
    with pytest.raises(EmbeddingError) as e:
        admin.unload_model("small")
    assert e.value.code.name == "FAILED_PRECONDITION" and "default" in e.value.details
    assert code_of(lambda: admin.unload_model("nothing")) == "NOT_FOUND"


def test_replace_under_load_answers_every_call_from_one_whole_export(admin_server, exports):
    _, client, admin, log = admin_server
    modules = {k: torch.jit.load(exports[k]) for k in ["v1", "v2"]}
    old_id = client.model_info().weights_sha256[:12]
    stop, answers, errors = threading.Event(), [], []

    def loop(seed):
        i = 0
        while not stop.is_set():
            i += 1
            try:
                request = client.build_request([image(seed + i % 3)], outputs=("cls",))
                response = client.stub.Embed(request, timeout=CALL_SECONDS)
                answers.append((seed + i % 3, response.model, response.embeddings[0].cls,
                                time.monotonic()))
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))

    callers = [threading.Thread(target=loop, args=(s,)) for s in (0, 10)]
    for t in callers:
        t.start()
    while len(answers) < 4:
        assert not errors, errors
        time.sleep(0.01)
    replaced = admin.load_model("small")
    switched = time.monotonic()
    while not any(a[3] > switched for a in answers):
        time.sleep(0.01)
    stop.set()
    for t in callers:
        t.join()
    assert not errors, errors
    assert replaced.replaced and replaced.model.name == "small"
    new_id = replaced.model.info.weights_sha256[:12]
    assert new_id != old_id and client.model_info().weights_sha256[:12] == new_id
    seen = set()
    for seed, model, cls, when in answers:
        which = {f"vits16@{old_id}": "v1", f"vits16@{new_id}": "v2"}[model]
        seen.add(which)
        expected = alone(modules[which], image(seed))[0]
        assert np.abs(decode_tensor(cls) - expected).max() <= MAX_ABS, (model, seed)
        if when > switched:
            assert which == "v2", "the old export answered after LoadModel returned"
    assert seen == {"v1", "v2"}
    assert "model 'small': replacing" in tail(log, 10**6)


def test_unload_finishes_accepted_work_and_frees_the_memory(admin_server, repository):
    pid, client, admin, log = admin_server
    idle = rss_bytes(pid)
    admin.load_model("big")
    client.embed([image(2)], model="big")
    loaded = rss_bytes(pid)
    assert admin.unload_model("big").seconds >= 0
    freed = rss_bytes(pid)
    weights = os.path.getsize(repository / "big.pt")
    assert loaded - idle > 0.8 * weights, (idle, loaded, weights)
    assert loaded - freed > 0.8 * weights, (idle, loaded, freed, weights)
    assert code_of(lambda: client.embed([image(2)], model="big")) == "NOT_FOUND"

    # A request held inside the model's forward when the unload starts still gets its answer.
    admin.load_model("slow")
    gate = SlowGate(str(repository / "slow.pt") + ".gate")
    held = client.stub.Embed.future(client.build_request([black()], model="slow"),
                                    timeout=CALL_SECONDS)
    # Accepted once decoded (the load's warm-up image was the first of the model's).
    decoded = 'dinov3_preprocess_duration_seconds_count{model="slow"}'
    deadline = time.monotonic() + CALL_SECONDS  # hang guards, not durations
    while samples(scrape(metrics_port(log))).get(decoded, 0) < 2:
        assert time.monotonic() < deadline and not held.done(), tail(log)
        time.sleep(0.01)
    unloaded = []
    unloader = threading.Thread(target=lambda: unloaded.append(admin.unload_model("slow")))
    unloader.start()
    while ("slow", "UNLOADING") not in states(client):
        assert time.monotonic() < deadline and not held.done(), tail(log)
        time.sleep(0.01)
    assert code_of(lambda: client.embed([image(3)], model="slow")) == "NOT_FOUND"
    assert not unloaded and unloader.is_alive()
    gate.open()
    unloader.join()
    assert held.result().embeddings[0].cls.shape == [384]
    assert unloaded and ("slow", "UNLOADING") not in states(client)
    assert [name for name, _ in states(client)] == ["small"]


def test_a_model_that_is_loading_answers_unavailable_until_it_serves(admin_server, repository):
    _, client, admin, log = admin_server
    loaded = []
    loader = threading.Thread(target=lambda: loaded.append(admin.load_model("gated")))
    loader.start()
    deadline = time.monotonic() + CALL_SECONDS  # a hang guard, not a duration
    while ("gated", "LOADING") not in states(client):
        assert time.monotonic() < deadline and loader.is_alive(), tail(log)
        time.sleep(0.01)
    with pytest.raises(EmbeddingError) as e:
        client.embed([image(4)], model="gated")
    assert e.value.code.name == "UNAVAILABLE" and "still loading" in e.value.details
    assert client.health("gated") == "NOT_SERVING" and client.health() == "SERVING"
    assert code_of(lambda: client.embed([image(4)])) == "OK"  # the default model serves on
    SlowGate(str(repository / "gated.pt") + ".gate").open()
    loader.join()
    assert loaded and not loaded[0].replaced
    assert ("gated", "READY") in states(client) and client.health("gated") == "SERVING"
    assert client.embed([image(4)], model="gated")[0].cls.shape == (384,)
