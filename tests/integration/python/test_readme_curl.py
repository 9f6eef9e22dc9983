"""The curl examples of README.md's "HTTP: OpenAI embeddings and the Open Inference Protocol"
section run as written against a real dinov3-server:

  - the ```sh block after the `<!-- readme-curl: ... -->` marker is found; its first paragraph
    sets DINOV3_HTTP, MODEL and IMAGE with ${VAR:-default}, and only those three are given
    here, through the environment (the server's HTTP address, its model's name, a JPEG file);
  - every other paragraph is run by bash (-euo pipefail) after the first one, alone, and must
    exit 0 (curl -f: an HTTP error fails it) and print JSON of the expected shape: embeddings
    (floats: one unit-length vector of the model's width; base64: the float32 vector, not
    normalised), the model list, readiness ({}), the model metadata, an inference answer
    (CLS in FP16) and the OpenAPI document (the checked-in file);
  - the examples cover each of those (an example dropped from the README fails the test).
"""
import base64
import io
import json
import os
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.integration.python.server_process import (ROOT, export_random_model, http_port,
                                                     running_server)

README = os.path.join(ROOT, "README.md")
MARKER = "<!-- readme-curl:"
MODEL = "readme"  # not the README's default, so that the substitution is exercised
RUN_SECONDS = 300  # hang guard of each example, not a duration


def examples():
    """(prelude, [paragraph, ...]) of the marked block."""
    with open(README) as f:
        text = f.read()
    assert text.count(MARKER) == 1, f"one {MARKER} marker expected in README.md"
    after = text[text.index(MARKER):]
    match = re.search(r"^```sh\n(.*?)^```$", after, re.S | re.M)
    assert match is not None, "no ```sh block after the readme-curl marker"
    assert after[:match.start()].count("```") == 0, "the block must follow the marker"
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", match.group(1)) if p.strip()]
    prelude, *rest = paragraphs
    assert "curl" not in prelude
    assert all("curl" in p for p in rest), rest
    return prelude, rest


def kind_of(example):
    """What an example asks for, from its URL."""
    url = re.search(r'curl [^"]*"http://\$DINOV3_HTTP(/[^"]*)"', example)
    assert url is not None, f"no curl http://$DINOV3_HTTP/... in:\n{example}"
    path = url.group(1)
    if path == "/v1/embeddings":
        return "embeddings base64" if '"base64"' in example else "embeddings"
    return {"/v1/models": "models", "/v2/health/ready": "ready",
            "/v2/models/$MODEL": "metadata", "/v2/models/$MODEL/infer": "infer",
            "/openapi.json": "openapi"}[path]


def check_answer(kind, answer, dim):
    if kind == "embeddings":
        assert answer["object"] == "list" and answer["model"] == MODEL
        [item] = answer["data"]
        vector = np.asarray(item["embedding"], dtype=np.float64)
        assert vector.shape == (dim,)
        assert abs(np.linalg.norm(vector) - 1.0) < 1e-5
        assert answer["usage"]["prompt_tokens"] > 0
    elif kind == "embeddings base64":
        [item] = answer["data"]
        vector = np.frombuffer(base64.b64decode(item["embedding"]), dtype="<f4")
        assert vector.shape == (dim,)
        assert abs(np.linalg.norm(vector.astype(np.float64)) - 1.0) > 1e-3  # not normalised
    elif kind == "models":
        assert [m["id"] for m in answer["data"]] == [MODEL]
    elif kind == "ready":
        assert answer == {}
    elif kind == "metadata":
        assert answer["name"] == MODEL
        assert {t["name"] for t in answer["inputs"]} == {"IMAGE", "PIXELS"}
    elif kind == "infer":
        assert answer["model_name"] == MODEL
        [output] = answer["outputs"]
        assert (output["name"], output["datatype"], output["shape"]) == ("CLS", "FP16", [1, dim])
        assert len(output["data"]) == dim
    elif kind == "openapi":
        with open(os.path.join(ROOT, "server", "openapi", "openapi.json")) as f:
            assert answer == json.load(f)


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    directory = tmp_path_factory.mktemp("readme_curl")
    model = export_random_model(directory, seed=47, name=f"{MODEL}.pt")
    image = directory / "photo.jpg"
    array = np.random.default_rng(5).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    image.write_bytes(buffer.getvalue())
    log = directory / "server.log"
    with running_server(model, log) as (_, client):
        dim = client.model_info().embed_dim
        env = {**os.environ, "DINOV3_HTTP": f"127.0.0.1:{http_port(log)}", "MODEL": MODEL,
               "IMAGE": str(image)}
        yield env, str(directory), dim


def test_readme_curl_examples_run_as_written(environment):
    env, cwd, dim = environment
    prelude, rest = examples()
    seen = []
    for example in rest:
        kind = kind_of(example)
        seen.append(kind)
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", f"{prelude}\n{example}\n"],
                                cwd=cwd, env=env, capture_output=True, timeout=RUN_SECONDS)
        assert result.returncode == 0, (example, result.returncode,
                                        result.stderr.decode(errors="replace"))
        try:
            answer = json.loads(result.stdout)
        except json.JSONDecodeError:
            pytest.fail(f"not JSON from:\n{example}\n{result.stdout[:500]!r}")
        check_answer(kind, answer, dim)
    assert sorted(seen) == sorted(["embeddings", "embeddings base64", "models", "ready",
                                   "metadata", "infer", "openapi"])
