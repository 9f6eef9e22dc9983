"""model.compute_dtype on the real server: what it reports (GetModelInfo, log, metrics), that the
wire dtype stays the client's choice, and that served bfloat16 and int8 vectors stay within the
cosine to float32 that README "Exactness" documents, on real photos (dtype_fidelity.py)."""
import subprocess

import numpy as np
import pytest

from tests.integration.python import dtype_fidelity
from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import (SERVER, export_random_model, free_port,
                                                      metrics_port, running_server, tail)

REPORTED = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_fp16",
            "avx512_vnni", "avx_vnni")
# README "Exactness": the least cosine to float32 of a served bfloat16 vits16 (12 blocks, random
# weights) on the mate-backgrounds photos, at 224x224 and with the aspect kept (measured about
# 0.9999; the bound leaves 10x that error for other CPUs' bfloat16 kernels).
BFLOAT16_MIN_COSINE = {"cls": 0.999, "pooled": 0.999, "patch_tokens": 0.999}
# The same for an int8 export of the same weights (measured about 0.9987 for patch tokens and
# CLS; the bound is the one an int8 export had to meet to ship, issue 15).
INT8_MIN_COSINE = {"cls": 0.99, "pooled": 0.99, "patch_tokens": 0.99}


def this_cpu():
    """(model name, reported features) of /proc/cpuinfo, parsed independently of the server."""
    model, flags = "", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not model:
                model = value.strip()
            if key.strip() == "flags" and not flags:
                flags = value.split()
    return model, [feature for feature in REPORTED if feature in flags]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("model"), seed=5, depth=2)


def test_model_info_log_and_metrics_show_the_computed_dtype_and_the_cpu(model, tmp_path):
    log = tmp_path / "server.log"
    with running_server(model, log, "--compute_dtype=bfloat16") as (_, client):
        info = client.model_info()
        text = scrape(metrics_port(log))
    cpu_model, features = this_cpu()
    assert info.model_dtype == "bfloat16"
    assert info.export_dtype == "float32"
    assert list(info.cpu_features) == features
    assert info.cpu_model == cpu_model
    log_text = tail(log, 10**6)
    assert "dtype=bfloat16 (export float32)" in log_text
    assert f"model.compute_dtype=bfloat16 computes in bfloat16" in log_text
    assert f"model 'model': CPU {cpu_model}; " in log_text  # the served model: model.pt's stem
    series = samples(text)
    info = 'dinov3_model_info{device="cpu",dtype="bfloat16",model="model",variant="vits16"}'
    assert series[info] == 1
    cpu_series = f'dinov3_cpu_info{{features="{",".join(features)}",model="{cpu_model}"}}'
    assert series[cpu_series] == 1


def test_auto_and_precedence(model, tmp_path, monkeypatch):
    """auto follows this CPU (its resolution for other CPUs is unit-tested with injected
    features); the flag wins over the environment variable."""
    _, features = this_cpu()
    native_bf16 = "amx_bf16" in features
    monkeypatch.setenv("DINOV3_MODEL_COMPUTE_DTYPE", "auto")
    with running_server(model, tmp_path / "auto.log") as (_, client):
        assert client.model_info().model_dtype == ("bfloat16" if native_bf16 else "float32")
    with running_server(model, tmp_path / "flag.log", "--compute_dtype=float16") as (_, client):
        assert client.model_info().model_dtype == "float16"


def test_a_bad_value_is_a_start_up_error_naming_the_key(model):
    done = subprocess.run([SERVER, f"--model={model}", "--compute_dtype=int8"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "model.compute_dtype" in done.stderr and "bfloat16" in done.stderr, done.stderr


def test_wire_dtype_is_the_clients_choice(model, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    with running_server(model, tmp_path / "bf16.log", "--compute_dtype=bfloat16") as (_, client):
        [as_f32] = client.embed([image], outputs=("cls",), dtype="float32")
        [as_f16] = client.embed([image], outputs=("cls",), dtype="float16")
    with running_server(model, tmp_path / "f32.log") as (_, client):
        [f32_as_bf16] = client.embed([image], outputs=("cls",), dtype="bfloat16")
        [f32_as_f32] = client.embed([image], outputs=("cls",), dtype="float32")
    assert as_f32.cls.dtype == np.float32 and as_f16.cls.dtype == np.float16
    # Computed in bfloat16, sent as float32: every value is a bfloat16 value (low 16 bits zero).
    assert not np.any(as_f32.cls.view(np.uint32) & 0xFFFF)
    # Computed in float32, most values are not.
    assert np.count_nonzero(f32_as_f32.cls.view(np.uint32) & 0xFFFF) > len(f32_as_f32.cls) // 2
    assert f32_as_bf16.cls.shape == f32_as_f32.cls.shape  # decoded from BFLOAT16 by the client
    np.testing.assert_allclose(f32_as_bf16.cls, f32_as_f32.cls, rtol=1 / 128, atol=1e-6)


@pytest.fixture(scope="module")
def photo_reference(tmp_path_factory):
    """(photo files, the float32 vits16 export's served embeddings of them), made once."""
    tmp = tmp_path_factory.mktemp("reference")
    files = dtype_fidelity.photos()
    model = dtype_fidelity.export_model(tmp, "vits16")
    return files, dtype_fidelity.serve_and_embed(model, "float32", str(tmp / "server.log"), files)


@pytest.mark.parametrize("dtype, bounds", [("bfloat16", BFLOAT16_MIN_COSINE),
                                           ("int8", INT8_MIN_COSINE)])
def test_served_dtype_stays_within_the_documented_cosine_on_real_photos(photo_reference, dtype,
                                                                         bounds, tmp_path):
    """bfloat16: the float32 export computing in bfloat16; int8: the int8 export of the same
    weights, served as exported."""
    files, reference = photo_reference
    model = dtype_fidelity.export_model(tmp_path, "vits16",
                                        dtype="int8" if dtype == "int8" else "float32")
    test = dtype_fidelity.serve_and_embed(model, dtype, str(tmp_path / "server.log"), files)
    for size in dtype_fidelity.SIZES:
        stats = dtype_fidelity.compare(reference[size], test[size])
        for name, bound in bounds.items():
            assert stats[name][0] >= bound, (size, name, stats[name])


def test_int8_vectors_depend_little_on_the_batch(tmp_path):
    """Dynamic int8 picks one activation scale per forward, over the whole batch: an image's
    vectors change a little with its batch companions (README "Exactness": cosine >= 0.998)."""
    files = dtype_fidelity.photos()[:4]
    model = dtype_fidelity.export_model(tmp_path, "vits16", depth=2, dtype="int8")
    with running_server(model, tmp_path / "server.log", "--max_batch_size=4") as (_, client):
        together = client.embed(files, outputs=("cls", "patch_tokens"))
        alone = [client.embed([f], outputs=("cls", "patch_tokens"))[0] for f in files]
    for name in ("cls", "patch_tokens"):
        cosine = np.concatenate([dtype_fidelity.cosines(getattr(a, name), getattr(t, name))
                                 for a, t in zip(alone, together)])
        assert cosine.min() >= INT8_MIN_COSINE[name], (name, cosine.min())


def test_an_int8_export_computes_as_exported_and_refuses_a_float_compute_dtype(tmp_path):
    model = dtype_fidelity.export_model(tmp_path, "vits16", depth=1, dtype="int8")
    with running_server(model, tmp_path / "auto.log", "--compute_dtype=auto") as (_, client):
        info = client.model_info()
        assert (info.model_dtype, info.export_dtype) == ("int8", "int8")
        [result] = client.embed([np.zeros((32, 32, 3), dtype=np.uint8)], outputs=("cls",))
        assert result.cls.dtype == np.float32 and np.all(np.isfinite(result.cls))
    done = subprocess.run([SERVER, f"--model={model}", "--compute_dtype=bfloat16",
                           f"--listen=127.0.0.1:{free_port()}", "--metrics_enabled=false"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "is an int8 export" in done.stderr and "--dtype bfloat16" in done.stderr, done.stderr
