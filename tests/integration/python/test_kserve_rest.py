"""The Open Inference Protocol (KServe v2) over HTTP/REST, end to end, with Triton's own client
(tritonclient.http) and raw HTTP (http.client) against the real dinov3-server's HTTP port:
  - /v2/health/live, /v2/health/ready, model ready (versions "" and "1"; "2" and unknown models
    not ready), server metadata, model metadata with the model's real D and R;
  - infer with IMAGE (BYTES: PNG and JPEG files in binary, tritonclient's default, and as base64
    strings / data URLs in JSON) and with PIXELS (UINT8 in binary and in JSON, flat or nested),
    every output, each in FP32, FP16 and BF16 (the request's `datatype` parameter), each output
    answered in binary and in JSON: the values equal those of a dinov3.v1 Embed call of the same
    images with the same options, exactly (binary: the same bytes; JSON: the same numbers, BF16
    and FP16 values written as the floats they are; tritonclient gives BF16 as ml_dtypes.bfloat16,
    compared by bit pattern);
  - a requested output's own `datatype` parameter: tritonclient.http's InferRequestedOutput has no
    public way to carry parameters (only binary_data and class_count), so it is sent as raw JSON;
  - the `timeout` parameter (microseconds), /v2/models/NAME/versions/1/infer (version 2: 404);
  - errors as the protocol says: an HTTP status and {"error": "<message>"}, naming the input /
    output for bad requests (wrong datatype, shape/bytes mismatch, IMAGE and PIXELS together,
    unknown output, binary_data_size past the body, bytes left over, a JSON IMAGE element that is
    not base64), 404 for an unknown model, 405 for GET .../infer; calls counted as
    method "RestModelInfer";
  - API keys: infer and metadata need `Authorization: Bearer KEY` (401 without), the two health
    probes answer without one (auth.exempt_health).
"""
import base64
import http.client
import json

import ml_dtypes
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.integration.python.kserve_helpers import encoded, native_bytes, pixels
from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import (export_random_model, http_port, metrics_port,
                                                     running_server)

OUTPUTS = ("CLS", "POOLED", "PATCH_TOKENS", "REGISTERS")
NUMPY_DTYPE = {"FP32": np.float32, "FP16": np.float16, "BF16": ml_dtypes.bfloat16}
HTTP_SECONDS = 300  # hang guard of one HTTP call, not a duration


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kserve_rest")
    model = export_random_model(tmp, seed=23, depth=1)
    log = tmp / "server.log"
    with running_server(model, log) as (_, client):
        port = http_port(log)
        triton_client = triton.InferenceServerClient(
            url=f"127.0.0.1:{port}", connection_timeout=HTTP_SECONDS,
            network_timeout=HTTP_SECONDS)
        name = client.model_info().name
        yield port, client, triton_client, name, log
        triton_client.close()





def image_input(files, binary=True):
    tensor = triton.InferInput("IMAGE", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=np.object_), binary_data=binary)
    return tensor


def pixel_input(arrays, binary=True):
    batch = np.stack(arrays)
    tensor = triton.InferInput("PIXELS", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    return tensor


def expect_error(status, *parts):
    """tritonclient raises InferenceServerException with the HTTP status and the message."""
    class Check:
        def __enter__(self):
            return self

        def __exit__(self, kind, error, _):
            assert kind is InferenceServerException, f"expected {status}, got {kind}: {error}"
            assert error.status() == str(status), (error.status(), error.message())
            for part in parts:
                assert part in error.message(), error.message()
            return True
    return Check()


def request(port, method, path, body=None, headers=None):
    """One raw HTTP call: (status, {lower-case header: value}, body bytes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_SECONDS)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        connection.close()


def infer_raw(port, name, header, binary=b"", path=None, headers=None):
    """POST of an infer request of the binary data extension (plain JSON without `binary`);
    `headers` may replace the Inference-Header-Content-Length."""
    text = json.dumps(header).encode()
    headers = dict(headers or {})
    headers.setdefault("Content-Type", "application/octet-stream" if binary else "application/json")
    if binary:
        headers.setdefault("Inference-Header-Content-Length", str(len(text)))
    return request(port, "POST", path or f"/v2/models/{name}/infer", text + binary, headers)


def split_response(headers, body):
    """The JSON header of an infer response and {output name: its binary bytes}."""
    length = int(headers.get("inference-header-content-length", len(body)))
    header = json.loads(body[:length])
    binary, offset = {}, length
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is not None:
            binary[output["name"]] = body[offset:offset + size]
            offset += size
    assert offset == len(body)
    return header, binary


def expect_http_error(answer, status, *parts):
    """A raw answer is `status` with the protocol's {"error": "<message>"} naming `parts`."""
    code, headers, body = answer
    assert code == status, (code, body)
    assert headers["content-type"].startswith("application/json"), headers
    error = json.loads(body)
    assert list(error) == ["error"] and isinstance(error["error"], str), error
    for part in parts:
        assert part in error["error"], error["error"]


def assert_equal_values(output_json, data, native, dtype):
    """A JSON output's numbers are exactly the native tensor's values; `data` (what
    tritonclient made of them) has the native bytes."""
    values = np.frombuffer(native, NUMPY_DTYPE[dtype]).astype(np.float64)
    assert np.array_equal(np.array(output_json["data"], dtype=np.float64), values)
    assert data.tobytes() == native


def test_probes_and_metadata(server):
    port, client, triton_client, name, _ = server
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(name)
    assert triton_client.is_model_ready(name, "1")
    assert not triton_client.is_model_ready(name, "2")
    assert not triton_client.is_model_ready("no-such-model")
    for path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{name}/ready",
                 f"/v2/models/{name}/versions/1/ready"):
        assert request(port, "GET", path)[0] == 200, path
    expect_http_error(request(port, "GET", "/v2/models/no-such-model/ready"), 404,
                      "no-such-model")
    server_metadata = triton_client.get_server_metadata()
    assert server_metadata["name"] == "dinov3-server"
    assert server_metadata["version"]
    assert "binary_tensor_data" in server_metadata["extensions"]

    info = client.model_info()
    d, r = info.embed_dim, info.num_registers
    for version in ("", "1"):
        metadata = triton_client.get_model_metadata(name, version)
        assert metadata["name"] == name
        assert metadata["versions"] == ["1"]
        assert metadata["platform"] == "pytorch_libtorch"
        tensors = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["inputs"]}
        assert tensors == {"IMAGE": ("BYTES", [-1]), "PIXELS": ("UINT8", [-1, -1, -1, 3])}
        tensors = {t["name"]: (t["datatype"], t["shape"]) for t in metadata["outputs"]}
        assert tensors == {"CLS": ("FP32", [-1, d]), "POOLED": ("FP32", [-1, d]),
                           "PATCH_TOKENS": ("FP32", [-1, -1, d]),
                           "REGISTERS": ("FP32", [-1, r, d])}
    with expect_error(404, "no-such-model"):
        triton_client.get_model_metadata("no-such-model")
    with expect_error(404, "version '7'"):
        triton_client.get_model_metadata(name, "7")


def test_default_outputs_are_cls_and_pooled_in_binary(server):
    _, client, triton_client, name, _ = server
    images = [pixels(1), pixels(2)]
    # No outputs named: tritonclient asks binary_data_output.
    result = triton_client.infer(name, [pixel_input(images)], request_id="r-1")
    response = result.get_response()
    assert response["id"] == "r-1"
    assert response["model_name"] == name
    assert response["model_version"] == "1"
    assert [o["name"] for o in response["outputs"]] == ["CLS", "POOLED"]
    d = client.model_info().embed_dim
    for output in ("CLS", "POOLED"):
        tensor = result.get_output(output)
        assert "data" not in tensor and tensor["parameters"]["binary_data_size"] == 2 * d * 4
        assert tensor["datatype"] == "FP32" and tensor["shape"] == [2, d]
        data = result.as_numpy(output)
        assert data.dtype == np.float32 and data.shape == (2, d)
        assert data.tobytes() == native_bytes(client, images, output)


@pytest.mark.parametrize("binary_out", [True, False], ids=["binary_out", "json_out"])
@pytest.mark.parametrize("dtype", ["FP32", "FP16", "BF16"])
@pytest.mark.parametrize("source", ["IMAGE", "PIXELS"])
def test_every_output_equals_the_native_api(server, source, dtype, binary_out):
    _, client, triton_client, name, _ = server
    if source == "IMAGE":
        arrays = [pixels(10), pixels(11, 40, 40), pixels(12, 30, 50)]
        images = [encoded(arrays[0], "PNG"), encoded(arrays[1], "JPEG"), encoded(arrays[2], "PNG")]
        tensor = image_input(images)
    else:
        arrays = [pixels(10), pixels(13), pixels(14)]  # one shape for one tensor
        images, tensor = arrays, pixel_input(arrays)
    requested = [triton.InferRequestedOutput(o, binary_data=binary_out) for o in OUTPUTS]
    result = triton_client.infer(name, [tensor], outputs=requested,
                                 parameters={"datatype": dtype})
    info = client.model_info()
    grid_h, grid_w = info.default_height // info.patch_size, info.default_width // info.patch_size
    shapes = {"CLS": [3, info.embed_dim], "POOLED": [3, info.embed_dim],
              "PATCH_TOKENS": [3, grid_h * grid_w, info.embed_dim],
              "REGISTERS": [3, info.num_registers, info.embed_dim]}
    assert [o["name"] for o in result.get_response()["outputs"]] == list(OUTPUTS)
    for output in OUTPUTS:
        tensor = result.get_output(output)
        assert (tensor["datatype"], tensor["shape"]) == (dtype, shapes[output])
        native = native_bytes(client, images, output, dtype)
        data = result.as_numpy(output)
        assert data.dtype == NUMPY_DTYPE[dtype] and list(data.shape) == shapes[output]
        if binary_out:
            assert "data" not in tensor
            assert tensor["parameters"]["binary_data_size"] == len(native)
            assert data.tobytes() == native, output
        else:
            assert "binary_data_size" not in tensor.get("parameters", {})
            assert_equal_values(tensor, data, native, dtype)
        if dtype == "BF16":  # tritonclient's bfloat16: the same bit patterns as the native API
            assert np.array_equal(data.view(np.uint16).ravel(), np.frombuffer(native, np.uint16))
    parameters = result.get_output("PATCH_TOKENS")["parameters"]
    assert (parameters["grid_height"], parameters["grid_width"]) == (grid_h, grid_w)


def test_json_inputs_equal_binary_inputs(server):
    port, client, triton_client, name, _ = server
    arrays = [pixels(30), pixels(31)]
    files = [encoded(a, "PNG") for a in arrays]
    native = native_bytes(client, arrays, "CLS")
    requested = [triton.InferRequestedOutput("CLS")]
    # PIXELS as JSON numbers (tritonclient writes them flat).
    result = triton_client.infer(name, [pixel_input(arrays, binary=False)], outputs=requested)
    assert result.as_numpy("CLS").tobytes() == native
    # IMAGE as JSON: base64 strings, and a data URL.
    strings = [base64.b64encode(files[0]).decode(),
               "data:image/png;base64," + base64.b64encode(files[1]).decode()]
    result = triton_client.infer(name, [image_input(strings, binary=False)], outputs=requested)
    assert result.as_numpy("CLS").tobytes() == native
    # PIXELS as nested JSON arrays, all JSON both ways (raw HTTP).
    header = {"inputs": [{"name": "PIXELS", "datatype": "UINT8", "shape": [2, 48, 64, 3],
                          "data": np.stack(arrays).tolist()}],
              "outputs": [{"name": "CLS"}]}
    status, headers, body = infer_raw(port, name, header)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    assert "inference-header-content-length" not in headers
    output = json.loads(body)["outputs"][0]
    assert_equal_values(output, np.array(output["data"], np.float32), native, "FP32")


def test_per_output_dtypes_and_options(server):
    """A requested output's own `datatype` overrides the request's; sent as raw JSON
    (tritonclient.http's InferRequestedOutput carries no parameters), mixed binary and JSON."""
    port, client, _, name, _ = server
    arrays = [pixels(20, 100, 80), pixels(21, 100, 80)]
    batch = np.stack(arrays)
    header = {
        "id": "mixed",
        "inputs": [{"name": "PIXELS", "datatype": "UINT8", "shape": list(batch.shape),
                    "parameters": {"binary_data_size": batch.nbytes}}],
        "outputs": [{"name": "POOLED", "parameters": {"datatype": "BF16", "binary_data": True}},
                    {"name": "CLS", "parameters": {"datatype": "FP16"}},
                    {"name": "PATCH_TOKENS", "parameters": {"binary_data": False}},
                    {"name": "REGISTERS", "parameters": {"datatype": "BF16"}}],
        "parameters": {"resize": "shorter_side_center_crop", "size": 64, "l2_normalize": True,
                       "datatype": "FP32", "priority": "HIGH", "binary_data_output": True}}
    status, headers, body = infer_raw(port, name, header, batch.tobytes())
    assert status == 200, body
    assert headers["content-type"] == "application/octet-stream"
    response, binary = split_response(headers, body)
    assert response["id"] == "mixed"
    outputs = {o["name"]: o for o in response["outputs"]}
    assert list(outputs) == ["POOLED", "CLS", "PATCH_TOKENS", "REGISTERS"]
    assert set(binary) == {"POOLED", "CLS", "REGISTERS"}  # PATCH_TOKENS asked JSON
    options = {"l2_normalize": True,
               "preprocess": {"mode": "shorter_side_center_crop", "height": 64, "width": 64}}
    for output, dtype in [("POOLED", "BF16"), ("CLS", "FP16"), ("PATCH_TOKENS", "FP32"),
                          ("REGISTERS", "BF16")]:
        assert outputs[output]["datatype"] == dtype
        native = native_bytes(client, arrays, output, dtype, **options)
        if output in binary:
            assert binary[output] == native, output
        else:
            values = np.array(outputs[output]["data"], NUMPY_DTYPE[dtype])
            assert_equal_values(outputs[output], values, native, dtype)
    assert outputs["PATCH_TOKENS"]["shape"] == [2, 16, client.model_info().embed_dim]
    parameters = outputs["PATCH_TOKENS"]["parameters"]
    assert (parameters["grid_height"], parameters["grid_width"]) == (4, 4)

    # FP16 and BF16 in JSON: the numbers are the 16-bit values written as floats.
    header = {"inputs": [{"name": "PIXELS", "datatype": "UINT8", "shape": list(batch.shape),
                          "data": batch.ravel().tolist()}],
              "outputs": [{"name": "CLS", "parameters": {"datatype": "BF16"}},
                          {"name": "POOLED", "parameters": {"datatype": "FP16"}}]}
    status, headers, body = infer_raw(port, name, header)
    assert status == 200, body
    outputs = {o["name"]: o for o in json.loads(body)["outputs"]}
    for output, dtype in [("CLS", "BF16"), ("POOLED", "FP16")]:
        native = native_bytes(client, arrays, output, dtype)
        bits = np.array(outputs[output]["data"], NUMPY_DTYPE[dtype]).view(np.uint16)
        assert np.array_equal(bits, np.frombuffer(native, np.uint16)), output


def test_timeout_parameter(server):
    _, client, triton_client, name, _ = server
    image = [encoded(pixels(40), "PNG")]
    with expect_error(504):
        triton_client.infer(name, [image_input(image)], timeout=1)  # microseconds
    # A generous timeout (300 s) and none (0) both answer.
    for timeout in (HTTP_SECONDS * 1_000_000, 0):
        result = triton_client.infer(name, [image_input(image)], timeout=timeout)
        assert result.as_numpy("CLS").tobytes() == native_bytes(client, image, "CLS")


def test_version_paths(server):
    port, client, triton_client, name, _ = server
    image = [encoded(pixels(41), "PNG")]
    result = triton_client.infer(name, [image_input(image)], model_version="1")
    assert result.get_response()["model_version"] == "1"
    assert result.as_numpy("CLS").tobytes() == native_bytes(client, image, "CLS")
    with expect_error(404, "version '2'"):
        triton_client.infer(name, [image_input(image)], model_version="2")
    header = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                          "data": [base64.b64encode(image[0]).decode()]}]}
    status, _, body = infer_raw(port, name, header, path=f"/v2/models/{name}/versions/1/infer")
    assert status == 200, body
    expect_http_error(infer_raw(port, name, header, path=f"/v2/models/{name}/versions/2/infer"),
                      404, "version '2'")
    expect_http_error(infer_raw(port, name, header, path="/v2/models/no-such-model/infer"),
                      404, "no-such-model")
    with expect_error(404, "no-such-model"):
        triton_client.infer("no-such-model", [image_input(image)])


def test_bad_requests_name_the_problem(server):
    port, _, triton_client, name, _ = server
    image = encoded(pixels(42), "PNG")
    wrong_type = triton.InferInput("PIXELS", [1, 4, 4, 3], "FP32")
    wrong_type.set_data_from_numpy(np.zeros((1, 4, 4, 3), np.float32))
    with expect_error(400, "input 'PIXELS'", "datatype FP32, expected UINT8"):
        triton_client.infer(name, [wrong_type])
    with expect_error(400, "inputs IMAGE and PIXELS"):
        triton_client.infer(name, [image_input([image]), pixel_input([pixels(43)])])
    with expect_error(400, "output 'EMBEDDING'", "CLS, POOLED"):
        triton_client.infer(name, [image_input([image])],
                            outputs=[triton.InferRequestedOutput("EMBEDDING")])
    with expect_error(400, "parameter 'resize'", "unknown value 'stretch'"):
        triton_client.infer(name, [image_input([image])], parameters={"resize": "stretch"})
    with expect_error(400, "image[0]"):
        triton_client.infer(name, [image_input([b"not an image"])])
    with expect_error(400, "inputs[0] (IMAGE).data[0]", "not base64"):
        triton_client.infer(name, [image_input(["not base64!"], binary=False)])

    # What tritonclient would not send: raw bodies.
    one = pixels(44).tobytes()
    pixels_header = {"inputs": [{"name": "PIXELS", "datatype": "UINT8", "shape": [2, 48, 64, 3],
                                 "parameters": {"binary_data_size": len(one)}}]}
    expect_http_error(infer_raw(port, name, pixels_header, one), 400,
                      "input 'PIXELS': shape [2, 48, 64, 3] needs 2 x 9216 bytes")
    past = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                        "parameters": {"binary_data_size": len(image) + 100}}]}
    framed = len(image).to_bytes(4, "little") + image
    expect_http_error(infer_raw(port, name, past, framed), 400, "inputs[0] (IMAGE)",
                      "runs past the end")
    exact = {"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                         "parameters": {"binary_data_size": len(framed)}}]}
    expect_http_error(infer_raw(port, name, exact, framed + b"left over"), 400,
                      "9 bytes of binary data")
    expect_http_error(infer_raw(port, name, exact, framed,
                                headers={"Inference-Header-Content-Length": "999999"}), 400,
                      "Inference-Header-Content-Length")
    expect_http_error(request(port, "POST", f"/v2/models/{name}/infer", b"{not json"), 400,
                      "not valid JSON")
    json_pixels = {"inputs": [{"name": "PIXELS", "datatype": "UINT8", "shape": [1, 1, 1, 3],
                               "data": [1, 256, 3]}]}
    expect_http_error(infer_raw(port, name, json_pixels), 400, "inputs[0] (PIXELS).data[1]")
    json_pixels["inputs"][0]["data"][1] = 2
    json_pixels["parameters"] = {"priority": 2**63}  # beyond int64: refused, not wrapped
    expect_http_error(infer_raw(port, name, json_pixels), 400, "parameters.priority",
                      "9223372036854775808 is too large")

    status, headers, body = request(port, "GET", f"/v2/models/{name}/infer")
    expect_http_error((status, headers, body), 405)
    assert headers["allow"] == "POST"
    assert triton_client.is_server_ready()  # and it still serves
    assert triton_client.infer(name, [image_input([image])]).as_numpy("CLS").shape[0] == 1


def test_calls_are_counted_as_rest_model_infer(server):
    _, _, triton_client, name, log = server
    port = metrics_port(log)
    key = (f'dinov3_requests_total{{code="OK",method="RestModelInfer",model="{name}",'
           'protocol="oip-rest"}')
    before = samples(scrape(port)).get(key, 0.0)
    triton_client.infer(name, [image_input([encoded(pixels(50), "PNG")])])
    assert samples(scrape(port)).get(key, 0.0) == before + 1


def test_api_keys_guard_all_but_the_probes(server, tmp_path):
    """With API keys the health probes answer without one (auth.exempt_health); metadata and
    inference need `Authorization: Bearer KEY` and are 401 without it."""
    _, client, _, name, _ = server
    key = "k3y-0123456789abcdef-for-rest"
    keys = tmp_path / "keys.txt"
    keys.write_text(key + "\n")
    model = export_random_model(tmp_path, seed=23, depth=1)
    log = tmp_path / "server.log"
    with running_server(model, log, f"--api_keys_file={keys}", api_key=key):
        port = http_port(log)
        keyless = triton.InferenceServerClient(url=f"127.0.0.1:{port}",
                                               connection_timeout=HTTP_SECONDS,
                                               network_timeout=HTTP_SECONDS)
        assert keyless.is_server_live()
        assert keyless.is_server_ready()
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert request(port, "GET", path)[0] == 200, path
        image = [encoded(pixels(60), "PNG")]
        with expect_error(401):
            keyless.infer(name, [image_input(image)])
        with expect_error(401):
            keyless.get_model_metadata(name)
        with expect_error(401):
            keyless.infer(name, [image_input(image)],
                          headers={"Authorization": "Bearer wrong-key-0123456789abcdef"})
        assert not keyless.is_model_ready(name)
        # 401 in the protocol's error shape, {"error": "<message>"}.
        status, _, body = request(port, "GET", "/v2")
        assert status == 401 and isinstance(json.loads(body)["error"], str), body
        headers = {"Authorization": f"Bearer {key}"}
        assert keyless.is_model_ready(name, headers=headers)
        assert keyless.get_model_metadata(name, headers=headers)["name"] == name
        result = keyless.infer(name, [image_input(image)], headers=headers)
        assert result.as_numpy("CLS").shape == (1, client.model_info().embed_dim)
        keyless.close()
