"""Several models in one dinov3-server (the configuration's `models` list), end to end:
  - under concurrent traffic mixed over two exports of different variants, every answer equals
    its own model run alone on that image (float32, within test_batching's 1e-5) and names the
    model that answered; the per-model metrics count exactly the images sent to each model, so
    no batch held another model's images;
  - the default model (empty name), an unknown name (NOT_FOUND naming the served ones), per-model
    GetModelInfo, ListModels, health entries, EmbedDense and StreamEmbed with per-request models;
  - fault isolation: a model whose instance breaks goes NOT_SERVING alone; the other model and
    the whole service (its default) keep SERVING and answering exactly.
"""
import os
import subprocess
import threading
import time

import numpy as np
import pytest
import torch

from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import (BIN_DIR, CALL_SECONDS,
                                                     export_random_model, metrics_port,
                                                     running_server, tail)
from tests.integration.python.test_batching import MAX_ABS, alone
from tests.integration.python.test_instance_health import BreaksOnWhite
from tests.integration.python.fault_helpers import save_contract_model
from dinov3_client import EmbeddingError, EmbeddingResult, embedding_pb2  # noqa: E402

CALLERS = 24


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    directory = tmp_path_factory.mktemp("models")
    return {"small": export_random_model(directory, seed=11, depth=2, name="small.pt"),
            "plus": export_random_model(directory, seed=12, depth=2, variant="vits16plus",
                                        name="plus.pt")}


def write_config(path, models, default_model=""):
    """A config file whose models list is `models`: [(name, path, {key: value})]."""
    lines = [f"model: {{default_model: '{default_model}'}}", "models:"]
    for name, export, keys in models:
        lines += [f"  - name: {name}", f"    path: {export}"]
        lines += [f"    {key}: {value}" for key, value in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return f"--config={path}"


@pytest.fixture(scope="module")
def two_models(exports, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two_models")
    config = write_config(tmp / "two.yaml", [
        ("small", exports["small"], {"max_batch_size": 8, "max_queue_delay_ms": 20}),
        ("plus", exports["plus"], {"max_batch_size": 4, "max_queue_delay_ms": 20})])
    log = tmp / "server.log"
    with running_server(None, log, config) as (target, client):
        yield target, client, log, {name: torch.jit.load(path) for name, path in exports.items()}


def image(seed):
    return np.random.default_rng(seed).integers(0, 256, (224, 224, 3), dtype=np.uint8)


def cli(target, *args):
    """dinov3-client's output for `args` against the server at `target` (exit status 0)."""
    done = subprocess.run([os.path.join(BIN_DIR, "dinov3-client"), *args, f"--server={target}"],
                          capture_output=True, text=True, timeout=CALL_SECONDS)
    assert done.returncode == 0, done.stderr
    return done.stdout


def per_model(values, family, model):
    return values.get(f'{family}{{model="{model}"}}', 0.0)


def test_mixed_traffic_each_answer_comes_from_its_own_model(two_models):
    _, client, log, modules = two_models
    port = metrics_port(log)
    before = samples(scrape(port))
    names = ["small", "plus", ""]  # "" is the default model, small
    wanted = [names[i % 3] for i in range(CALLERS)]
    results, answered_by, errors = [None] * CALLERS, [None] * CALLERS, []
    start = threading.Barrier(CALLERS)

    def call(i):
        try:
            start.wait()
            request = client.build_request([image(i)], outputs=("cls", "pooled"),
                                           model=wanted[i])
            response = client.stub.Embed(request, timeout=CALL_SECONDS)
            results[i] = EmbeddingResult.from_proto(response.embeddings[0])
            answered_by[i] = (response.model_name, response.model.split("@")[0])
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    variant = {"small": "vits16", "plus": "vits16plus"}
    for i in range(CALLERS):
        name = wanted[i] or "small"
        assert answered_by[i] == (name, variant[name])
        cls, pooled = alone(modules[name], image(i))
        assert np.abs(results[i].cls - cls).max() <= MAX_ABS, (i, name)
        assert np.abs(results[i].pooled - pooled).max() <= MAX_ABS, (i, name)
        other = alone(modules["plus" if name == "small" else "small"], image(i))[0]
        assert np.abs(results[i].cls - other).max() > 100 * MAX_ABS  # the models differ
    after = samples(scrape(port))
    for name in ["small", "plus"]:
        sent = sum(1 for w in wanted if (w or "small") == name)
        for family in ["dinov3_images_total", "dinov3_batch_size_sum",
                       "dinov3_queue_duration_seconds_count"]:
            delta = per_model(after, family, name) - per_model(before, family, name)
            assert delta == sent, (family, name, delta, sent)
        assert after[f'dinov3_model_info{{device="cpu",dtype="float32",model="{name}",'
                     f'variant="{variant[name]}"}}'] == 1
    assert 'model="small"' in tail(log, 10**6) and 'model="plus"' in tail(log, 10**6)


def test_names_default_unknown_info_list_and_health(two_models):
    target, client, log, _ = two_models
    port = metrics_port(log)
    unknown_key = ('dinov3_requests_total{code="NOT_FOUND",method="Embed",model="(unknown)",'
                   'protocol="dinov3"}')
    unknown_before = samples(scrape(port)).get(unknown_key, 0.0)
    with pytest.raises(EmbeddingError) as e:
        client.embed([image(0)], model="large")
    assert e.value.code.name == "NOT_FOUND"
    assert "'large'" in e.value.details and "served: small, plus" in e.value.details
    assert samples(scrape(port))[unknown_key] == unknown_before + 1
    with pytest.raises(EmbeddingError) as e:
        client.model_info(model="../small")
    assert e.value.code.name == "NOT_FOUND"

    assert client.model_info().name == "small"  # the default
    info = client.model_info(model="plus")
    assert (info.name, info.variant) == ("plus", "vits16plus")
    models = client.list_models()
    assert [(m.name, embedding_pb2.ModelStatus.State.Name(m.state), m.is_default)
            for m in models] == [("small", "READY", True), ("plus", "READY", False)]
    assert [m.info.variant for m in models] == ["vits16", "vits16plus"]
    assert [client.health(s) for s in ["", "dinov3.v1.EmbeddingService", "small", "plus"]] == \
        ["SERVING"] * 4
    with pytest.raises(EmbeddingError) as e:
        client.health("large")
    assert e.value.code.name == "NOT_FOUND"

    dense = client.stub.EmbedDense(embedding_pb2.EmbedDenseRequest(
        image=embedding_pb2.Image(encoded=b""), model="plus"), timeout=CALL_SECONDS)
    with pytest.raises(Exception) as e:  # an empty image is refused by plus, not by the name
        list(dense)
    assert "image" in str(e.value)
    chunks = list(client.stub.EmbedDense(embedding_pb2.EmbedDenseRequest(
        image=embedding_pb2.Image(raw=embedding_pb2.RawImage(
            width=64, height=64, format=embedding_pb2.RGB8, data=image(3)[:64, :64].tobytes())),
        model="plus"), timeout=CALL_SECONDS))
    assert chunks and all(c.model_name == "plus" for c in chunks)

    # dinov3-client: models, and --model on its commands.
    listed = cli(target, "models")
    assert listed.splitlines()[0].startswith("small READY default vits16 dim=384")
    assert listed.splitlines()[1].startswith("plus READY vits16plus dim=384")
    assert 'variant: "vits16plus"' in cli(target, "info", "--model=plus")
    assert cli(target, "health", "--model=plus").strip() == "SERVING"

    requests = [client.build_request([image(5)], request_id=f"r{i}", model=name)
                for i, name in enumerate(["plus", "nope", "", "small"])]
    answers = {a.request_id: a for a in client.stream_embed(requests, timeout=CALL_SECONDS)}
    assert answers["r1"].error is not None and answers["r1"].error.code.name == "NOT_FOUND"
    assert all(answers[r].error is None for r in ["r0", "r2", "r3"])
    np.testing.assert_array_equal(answers["r2"].results[0].cls, answers["r3"].results[0].cls)
    assert not np.array_equal(answers["r0"].results[0].cls, answers["r3"].results[0].cls)


def test_a_broken_model_leaves_the_other_model_and_the_service_serving(exports, tmp_path):
    broken = save_contract_model(
        lambda m: BreaksOnWhite(m["embed_dim"], m["num_registers"], m["patch_size"]),
        exports["small"], tmp_path / "breaks_on_white.pt")
    config = write_config(tmp_path / "config.yaml", [
        ("broken", broken, {"max_batch_size": 1}), ("small", exports["small"], {})],
        default_model="small")
    log = tmp_path / "server.log"
    white = np.full((32, 32, 3), 255, np.uint8)
    module = torch.jit.load(exports["small"])
    with running_server(None, log, config) as (_, client):
        assert client.model_info().name == "small"  # model.default_model, not the first entry
        for _ in range(3):  # MAX_CONSECUTIVE_FAILURES of test_instance_health
            with pytest.raises(EmbeddingError) as e:
                client.embed([white], model="broken")
            assert e.value.code.name == "INTERNAL"
        deadline = time.monotonic() + CALL_SECONDS  # a hang guard, not a duration
        while client.health("broken") != "NOT_SERVING":
            assert time.monotonic() < deadline, f"broken still SERVING:\n{tail(log)}"
            time.sleep(0.1)
        assert [client.health(s) for s in ["", "dinov3.v1.EmbeddingService", "small"]] == \
            ["SERVING"] * 3
        [result] = client.embed([image(7)], model="small")
        cls, pooled = alone(module, image(7))
        assert np.abs(result.cls - cls).max() <= MAX_ABS
        assert np.abs(result.pooled - pooled).max() <= MAX_ABS
    assert "model 'broken': a model instance keeps failing" in tail(log, 10**6)
