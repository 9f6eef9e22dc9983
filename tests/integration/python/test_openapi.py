"""The OpenAPI document of the HTTP API (server/openapi/openapi.json) against the real server:

  - the checked-in document is a valid OpenAPI 3.1 document (openapi-spec-validator);
  - GET /openapi.json serves exactly the checked-in bytes, as application/json, with no API key
    even when auth.api_keys_file is set (HEAD is served too);
  - every path + method the document lists is routed by a running server (neither 404 nor 405,
    with the model paths filled in with the served model and version "1"), answers one of the
    statuses the document lists for it, and a JSON answer validates against the document's
    schema for that status;
  - real answers validate against the document's response schemas (jsonschema, draft 2020-12,
    which OpenAPI 3.1 schemas are): /v1/embeddings float and base64 answers and its errors (400
    naming `dimensions`, 404 unknown model, 415 content type), /v1/models, /v2 server metadata,
    /v2/models/NAME metadata (plain and versioned), model readiness, /v2 infer JSON answers
    (IMAGE as base64, PIXELS, PATCH_TOKENS with its grid parameters, FP16) and errors (400, 404
    unknown model and version), the binary tensor extension's answer (its JSON header), and,
    with API keys, the 401 answers of /v1 and /v2 (each in its front door's error shape, as
    documented) while the health probes and the document need no key;
  - paths the document does not list answer 404 (the checks above would mean nothing if every
    path were routed).
"""
import base64
import io
import json
import struct
import urllib.error
import urllib.request

import jsonschema
import numpy as np
import pytest
from openapi_spec_validator import validate as validate_spec
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.integration.python.server_process import (ROOT, export_random_model, http_port,
                                                     running_server)

DOCUMENT_PATH = f"{ROOT}/server/openapi/openapi.json"
with open(DOCUMENT_PATH, "rb") as _f:
    DOCUMENT_BYTES = _f.read()
DOCUMENT = json.loads(DOCUMENT_BYTES)
MODEL = "dino"
API_KEY = "openapi-test-key-0123456789abcdef"
HTTP_SECONDS = 300  # hang guard of each HTTP call, not a duration
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The document as a JSON Schema resource, so that its schemas' "#/components/..." refs resolve.
_BASE = "urn:dinov3-openapi"
_REGISTRY = Registry().with_resource(
    _BASE, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012))


def png(height=40, width=56, seed=0):
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = png()
DATA_URL = "data:image/png;base64," + base64.b64encode(IMAGE).decode()


def call(port, method, path, body=None, headers=None):
    """(status, headers, body bytes) of one HTTP request; errors are answers, not exceptions."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     headers=headers, method=method.upper())
    try:
        with urllib.request.urlopen(request, timeout=HTTP_SECONDS) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def follow(node):
    """`node` with its "$ref"s (to "#/components/...") followed."""
    while isinstance(node, dict) and "$ref" in node:
        target = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def operation(path, method):
    return follow(DOCUMENT["paths"][path][method])


def response_schema(path, method, status, content_type="application/json"):
    """The document's schema of the `status` answer of `method` `path`, as a JSON Pointer into
    the document (so that its refs resolve); fails when the document does not list it."""
    responses = operation(path, method)["responses"]
    assert str(status) in responses, f"{method.upper()} {path}: {status} is not documented"
    pointer = ["paths", path, method, "responses", str(status)]
    response = responses[str(status)]
    if "$ref" in response:
        pointer = response["$ref"].removeprefix("#/").split("/")
        response = follow(response)
    assert content_type in response["content"], (path, method, status, content_type)
    pointer += ["content", content_type, "schema"]
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)


def check(instance, path, method, status, content_type="application/json"):
    pointer = response_schema(path, method, status, content_type)
    validator = jsonschema.Draft202012Validator({"$ref": _BASE + pointer}, registry=_REGISTRY)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, (f"{method.upper()} {path} {status} does not match {pointer}: "
                        + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5]))


def checked(port, method, documented_path, path=None, body=None, headers=None,
            want_status=200):
    """Calls `path` (default: `documented_path`), asserts `want_status` and validates the JSON
    answer against the document's schema for it; returns the parsed answer."""
    status, answer_headers, raw = call(port, method, path or documented_path, body, headers)
    assert status == want_status, (path or documented_path, status, raw[:500])
    assert answer_headers.get_content_type() == "application/json", answer_headers
    answer = json.loads(raw)
    check(answer, documented_path, method.lower(), status)
    return answer


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_random_model(tmp_path_factory.mktemp("openapi_model"), seed=43,
                               name=f"{MODEL}.pt")


@pytest.fixture(scope="module")
def port(model, tmp_path_factory):
    log = tmp_path_factory.mktemp("openapi_server") / "server.log"
    with running_server(model, log):
        yield http_port(log)


def test_document_is_valid_openapi():
    assert DOCUMENT["openapi"].startswith("3.1")
    validate_spec(DOCUMENT)
    # The paths the front doors' headers list, and this document's own.
    v2_model = ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"]
    want = {"/v1/embeddings": {"post"}, "/v1/models": {"get"}, "/v2/health/live": {"get"},
            "/v2/health/ready": {"get"}, "/v2": {"get"}, "/openapi.json": {"get"}}
    for prefix in v2_model:
        want[prefix] = {"get"}
        want[prefix + "/ready"] = {"get"}
        want[prefix + "/infer"] = {"post"}
    got = {path: {m for m in item if m in METHODS} for path, item in DOCUMENT["paths"].items()}
    assert got == want
    assert operation("/openapi.json", "get")["security"] == []
    assert DOCUMENT["components"]["securitySchemes"]["bearerAuth"] == {
        **DOCUMENT["components"]["securitySchemes"]["bearerAuth"], "type": "http",
        "scheme": "bearer"}


def test_served_document_is_the_checked_in_file(port):
    status, headers, body = call(port, "GET", "/openapi.json")
    assert status == 200
    assert headers.get_content_type() == "application/json"
    assert body == DOCUMENT_BYTES
    status, headers, body = call(port, "HEAD", "/openapi.json")
    assert status == 200 and body == b""


def test_every_documented_operation_is_routed(port):
    for path, item in DOCUMENT["paths"].items():
        concrete = path.replace("{name}", MODEL).replace("{version}", "1")
        for method in (m for m in item if m in METHODS):
            body = {} if method == "post" else None
            status, headers, raw = call(port, method, concrete, body)
            assert status not in (404, 405), (method, concrete, status, raw[:300])
            assert str(status) in operation(path, method)["responses"], (method, path, status)
            if headers.get_content_type() == "application/json":
                check(json.loads(raw), path, method, status)
    # Unlisted paths are not routed (so "not 404" above means something).
    for method, path in [("GET", "/v1/nothing"), ("GET", "/v3"), ("GET", "/openapi.yaml"),
                         ("POST", "/v1/embedding")]:
        status, _, _ = call(port, method, path, {} if method == "POST" else None)
        assert status == 404, (method, path, status)


def test_openai_answers_match_the_document(port):
    path = "/v1/embeddings"
    for encoding_format, kind in [("float", list), ("base64", str)]:
        answer = checked(port, "POST", path,
                         body={"model": MODEL, "input": [DATA_URL, DATA_URL],
                               "encoding_format": encoding_format})
        assert [d["index"] for d in answer["data"]] == [0, 1]
        assert all(isinstance(d["embedding"], kind) for d in answer["data"])
    answer = checked(port, "POST", path,
                     body={"input": DATA_URL, "output": "pooled", "normalize": False})
    assert answer["model"] == MODEL
    error = checked(port, "POST", path, body={"input": DATA_URL, "dimensions": 8},
                    want_status=400)
    assert error["error"]["param"] == "dimensions"
    error = checked(port, "POST", path, body={"model": "nope", "input": DATA_URL},
                    want_status=404)
    assert error["error"]["code"] == "model_not_found"
    error = checked(port, "POST", path, body=json.dumps({"input": DATA_URL}).encode(),
                    headers={"Content-Type": "text/plain"}, want_status=415)
    assert error["error"]["type"] == "invalid_request_error"
    models = checked(port, "GET", "/v1/models")
    assert [m["id"] for m in models["data"]] == [MODEL]


def test_open_inference_answers_match_the_document(port):
    server = checked(port, "GET", "/v2")
    assert "binary_tensor_data" in server["extensions"]
    for documented, concrete in [("/v2/models/{name}", f"/v2/models/{MODEL}"),
                                 ("/v2/models/{name}/versions/{version}",
                                  f"/v2/models/{MODEL}/versions/1")]:
        metadata = checked(port, "GET", documented, concrete)
        assert metadata["name"] == MODEL
        assert {t["name"] for t in metadata["inputs"]} == {"IMAGE", "PIXELS"}
        checked(port, "GET", documented + "/ready", concrete + "/ready")
    checked(port, "GET", "/v2/models/{name}", "/v2/models/nope", want_status=404)
    checked(port, "GET", "/v2/models/{name}/ready", "/v2/models/nope/ready", want_status=404)
    checked(port, "GET", "/v2/models/{name}/versions/{version}",
            f"/v2/models/{MODEL}/versions/2", want_status=404)
    checked(port, "GET", "/v2/health/live")
    checked(port, "GET", "/v2/health/ready")

    infer = "/v2/models/{name}/infer"
    concrete = f"/v2/models/{MODEL}/infer"
    image = {"name": "IMAGE", "datatype": "BYTES", "shape": [1],
             "data": [base64.b64encode(IMAGE).decode()]}
    answer = checked(port, "POST", infer, concrete, body={"id": "a", "inputs": [image]})
    assert [o["name"] for o in answer["outputs"]] == ["CLS", "POOLED"]
    assert answer["id"] == "a"
    pixels = np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3)).tolist()
    answer = checked(port, "POST", "/v2/models/{name}/versions/{version}/infer",
                     f"/v2/models/{MODEL}/versions/1/infer",
                     body={"inputs": [{"name": "PIXELS", "datatype": "UINT8",
                                       "shape": [1, 16, 16, 3], "data": pixels}],
                           "parameters": {"datatype": "FP16"},
                           "outputs": [{"name": "PATCH_TOKENS"}, {"name": "CLS"}]})
    tokens = answer["outputs"][0]
    assert tokens["datatype"] == "FP16"
    assert {"grid_height", "grid_width"} <= set(tokens["parameters"])
    error = checked(port, "POST", infer, concrete, body={"inputs": []}, want_status=400)
    assert "inputs" in error["error"]
    checked(port, "POST", infer, "/v2/models/nope/infer", body={"inputs": [image]},
            want_status=404)
    checked(port, "POST", "/v2/models/{name}/versions/{version}/infer",
            f"/v2/models/{MODEL}/versions/7/infer", body={"inputs": [image]}, want_status=404)


def test_binary_extension_answer_matches_the_document(port):
    """The binary tensor data extension: IMAGE in binary, CLS answered in binary."""
    header = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                                     "parameters": {"binary_data_size": 4 + len(IMAGE)}}],
                         "outputs": [{"name": "CLS", "parameters": {"binary_data": True}},
                                     {"name": "POOLED"}]}).encode()
    body = header + struct.pack("<I", len(IMAGE)) + IMAGE
    path = "/v2/models/{name}/infer"
    status, headers, raw = call(port, "POST", f"/v2/models/{MODEL}/infer", body,
                                {"Inference-Header-Content-Length": str(len(header)),
                                 "Content-Type": "application/octet-stream"})
    assert status == 200, raw[:300]
    assert headers.get_content_type() == "application/octet-stream"
    response_schema(path, "post", 200, "application/octet-stream")  # documented
    documented_headers = follow(operation(path, "post")["responses"]["200"])["headers"]
    assert "Inference-Header-Content-Length" in documented_headers
    length = int(headers["Inference-Header-Content-Length"])
    answer = json.loads(raw[:length])
    check(answer, path, "post", 200)
    cls, pooled = answer["outputs"]
    assert "data" not in cls and cls["parameters"]["binary_data_size"] == len(raw) - length
    assert "data" in pooled


def test_api_keys_as_documented(model, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{API_KEY}\n")
    log = tmp_path / "server.log"
    with running_server(model, log, f"--api_keys_file={keys}"):
        port = http_port(log)
        status, _, body = call(port, "GET", "/openapi.json")
        assert status == 200 and body == DOCUMENT_BYTES
        checked(port, "GET", "/v2/health/live")
        checked(port, "GET", "/v2/health/ready")
        for method, path in [("POST", "/v1/embeddings"), ("GET", "/v1/models"), ("GET", "/v2"),
                             ("GET", "/v2/models/{name}"), ("POST", "/v2/models/{name}/infer")]:
            concrete = path.replace("{name}", MODEL)
            body = {"input": DATA_URL} if method == "POST" else None
            status, headers, raw = call(port, method, concrete, body)
            assert status == 401, (path, status, raw[:300])
            assert headers["WWW-Authenticate"] == "Bearer"
            check(json.loads(raw), path, method.lower(), 401)
        checked(port, "GET", "/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
        checked(port, "GET", "/v2", headers={"Authorization": f"Bearer {API_KEY}"})
