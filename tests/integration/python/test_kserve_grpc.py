"""The Open Inference Protocol (KServe v2) over gRPC, end to end, with Triton's own client
(tritonclient.grpc) against the real dinov3-server on the port of dinov3.v1:
  - ServerLive / ServerReady / ModelReady (versions "" and "1"; others and unknown models not
    ready), ServerMetadata, ModelMetadata with the model's real D and R;
  - ModelInfer with IMAGE (encoded PNG and JPEG) and with PIXELS, every output, each in FP32,
    FP16 and BF16 (the request's `datatype` parameter, and per output), typed contents as well
    as raw contents: the bytes equal those of a dinov3.v1 Embed call of the same images with the
    same options (bit for bit);
  - errors: INVALID_ARGUMENT naming the input / output / parameter, NOT_FOUND for an unknown
    model or version, DEADLINE_EXCEEDED from the `timeout` parameter; the calls are counted
    under method "ModelInfer".
"""

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.integration.python.kserve_helpers import encoded, native_bytes, pixels
from tests.integration.python.prometheus_process import samples, scrape
from tests.integration.python.server_process import (export_random_model, metrics_port,
                                                     running_server)

OUTPUTS = ("CLS", "POOLED", "PATCH_TOKENS", "REGISTERS")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kserve")
    model = export_random_model(tmp, seed=19, depth=1)
    log = tmp / "server.log"
    with running_server(model, log) as (target, client):
        triton_client = triton.InferenceServerClient(url=target)
        name = client.model_info().name
        yield target, client, triton_client, name, log
        triton_client.close()





def image_input(files):
    tensor = triton.InferInput("IMAGE", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=np.object_))
    return tensor


def pixel_input(arrays):
    batch = np.stack(arrays)
    tensor = triton.InferInput("PIXELS", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch)
    return tensor


def raw_outputs(result):
    """{name: (datatype, shape, raw bytes)} of an InferResult."""
    response = result.get_response()
    return {o.name: (o.datatype, list(o.shape), response.raw_output_contents[i])
            for i, o in enumerate(response.outputs)}


def expect_error(code, *parts):
    class Check:
        def __enter__(self):
            return self

        def __exit__(self, kind, error, _):
            assert kind is InferenceServerException, f"expected {code}, got {kind}"
            assert error.status() == f"StatusCode.{code}", (error.status(), error.message())
            for part in parts:
                assert part in error.message(), error.message()
            return True
    return Check()


def test_probes_and_metadata(server):
    _, client, triton_client, name, _ = server
    assert triton_client.is_server_live()
    assert triton_client.is_server_ready()
    assert triton_client.is_model_ready(name)
    assert triton_client.is_model_ready(name, "1")
    assert not triton_client.is_model_ready(name, "2")
    assert not triton_client.is_model_ready("no-such-model")
    server_metadata = triton_client.get_server_metadata()
    assert server_metadata.name == "dinov3-server"
    assert server_metadata.version

    info = client.model_info()
    d, r = info.embed_dim, info.num_registers
    metadata = triton_client.get_model_metadata(name)
    assert metadata.name == name
    assert list(metadata.versions) == ["1"]
    assert metadata.platform == "pytorch_libtorch"
    tensors = {t.name: (t.datatype, list(t.shape)) for t in metadata.inputs}
    assert tensors == {"IMAGE": ("BYTES", [-1]), "PIXELS": ("UINT8", [-1, -1, -1, 3])}
    tensors = {t.name: (t.datatype, list(t.shape)) for t in metadata.outputs}
    assert tensors == {"CLS": ("FP32", [-1, d]), "POOLED": ("FP32", [-1, d]),
                       "PATCH_TOKENS": ("FP32", [-1, -1, d]), "REGISTERS": ("FP32", [-1, r, d])}
    with expect_error("NOT_FOUND", "no-such-model"):
        triton_client.get_model_metadata("no-such-model")
    with expect_error("NOT_FOUND", "version '7'"):
        triton_client.get_model_metadata(name, "7")


def test_default_outputs_are_cls_and_pooled(server):
    _, client, triton_client, name, _ = server
    images = [pixels(1), pixels(2)]
    result = triton_client.infer(name, [pixel_input(images)], request_id="r-1")
    assert result.get_response().id == "r-1"
    assert result.get_response().model_name == name
    assert result.get_response().model_version == "1"
    outputs = raw_outputs(result)
    assert list(outputs) == ["CLS", "POOLED"]
    d = client.model_info().embed_dim
    assert result.as_numpy("CLS").shape == (2, d)
    assert result.as_numpy("CLS").dtype == np.float32
    for output in ("CLS", "POOLED"):
        assert outputs[output][2] == native_bytes(client, images, output)


@pytest.mark.parametrize("dtype", ["FP32", "FP16", "BF16"])
@pytest.mark.parametrize("source", ["IMAGE", "PIXELS"])
def test_every_output_equals_the_native_api(server, source, dtype):
    _, client, triton_client, name, _ = server
    arrays = [pixels(10), pixels(11, 40, 40), pixels(12, 30, 50)]
    if source == "IMAGE":
        images = [encoded(arrays[0], "PNG"), encoded(arrays[1], "JPEG"), encoded(arrays[2], "PNG")]
        tensor = image_input(images)
    else:
        arrays = [pixels(10), pixels(13), pixels(14)]  # one shape for one tensor
        images, tensor = arrays, pixel_input(arrays)
    requested = [triton.InferRequestedOutput(o) for o in OUTPUTS]
    result = triton_client.infer(name, [tensor], outputs=requested,
                                 parameters={"datatype": dtype})
    outputs = raw_outputs(result)
    info = client.model_info()
    grid = (info.default_height // info.patch_size) * (info.default_width // info.patch_size)
    shapes = {"CLS": [3, info.embed_dim], "POOLED": [3, info.embed_dim],
              "PATCH_TOKENS": [3, grid, info.embed_dim],
              "REGISTERS": [3, info.num_registers, info.embed_dim]}
    assert list(outputs) == list(OUTPUTS)
    for output in OUTPUTS:
        datatype, shape, data = outputs[output]
        assert (datatype, shape) == (dtype, shapes[output])
        assert data == native_bytes(client, images, output, dtype), output
    if dtype == "FP16":
        assert result.as_numpy("CLS").dtype == np.float16


def test_per_output_dtypes_and_options(server):
    _, client, triton_client, name, _ = server
    arrays = [pixels(20, 100, 80), pixels(21, 100, 80)]
    requested = [triton.InferRequestedOutput("POOLED"), triton.InferRequestedOutput("CLS"),
                 triton.InferRequestedOutput("PATCH_TOKENS"),
                 triton.InferRequestedOutput("REGISTERS")]
    requested[0]._output.parameters["datatype"].string_param = "BF16"
    requested[1]._output.parameters["datatype"].string_param = "FP16"
    parameters = {"resize": "shorter_side_center_crop", "size": 64, "l2_normalize": True,
                  "datatype": "FP32"}
    # priority: Triton's uint64 parameter (1 = the highest level: HIGH).
    result = triton_client.infer(name, [pixel_input(arrays)], outputs=requested,
                                 parameters=parameters, priority=1)
    outputs = raw_outputs(result)
    assert list(outputs) == ["POOLED", "CLS", "PATCH_TOKENS", "REGISTERS"]
    options = {"l2_normalize": True,
               "preprocess": {"mode": "shorter_side_center_crop", "height": 64, "width": 64}}
    for output, dtype in [("POOLED", "BF16"), ("CLS", "FP16"), ("PATCH_TOKENS", "FP32"),
                          ("REGISTERS", "FP32")]:
        assert outputs[output][0] == dtype
        assert outputs[output][2] == native_bytes(client, arrays, output, dtype, **options), output
    assert outputs["PATCH_TOKENS"][1] == [2, 16, client.model_info().embed_dim]
    parameters = result.get_response().outputs[2].parameters
    assert (parameters["grid_height"].int64_param, parameters["grid_width"].int64_param) == (4, 4)


def test_typed_contents_equal_raw_contents(server):
    target, client, _, name, _ = server
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
    arrays = [pixels(30), pixels(31)]
    files = [encoded(a, "PNG") for a in arrays]
    for tensor in [
            service_pb2.ModelInferRequest.InferInputTensor(
                name="IMAGE", datatype="BYTES", shape=[2],
                contents=service_pb2.InferTensorContents(bytes_contents=files)),
            service_pb2.ModelInferRequest.InferInputTensor(
                name="PIXELS", datatype="UINT8", shape=[2, 48, 64, 3],
                contents=service_pb2.InferTensorContents(
                    uint_contents=np.stack(arrays).ravel().tolist()))]:
        response = stub.ModelInfer(service_pb2.ModelInferRequest(
            model_name=name, inputs=[tensor],
            outputs=[service_pb2.ModelInferRequest.InferRequestedOutputTensor(name="CLS")]),
            timeout=60)
        assert response.raw_output_contents[0] == native_bytes(client, arrays, "CLS")


def test_bad_requests_name_the_problem(server):
    target, _, triton_client, name, _ = server
    image = encoded(pixels(40), "PNG")
    wrong_type = triton.InferInput("PIXELS", [1, 4, 4, 3], "FP32")
    wrong_type.set_data_from_numpy(np.zeros((1, 4, 4, 3), np.float32))
    with expect_error("INVALID_ARGUMENT", "input 'PIXELS'", "datatype FP32, expected UINT8"):
        triton_client.infer(name, [wrong_type])
    with expect_error("INVALID_ARGUMENT", "inputs IMAGE and PIXELS"):
        triton_client.infer(name, [image_input([image]), pixel_input([pixels(41)])])
    with expect_error("INVALID_ARGUMENT", "output 'EMBEDDING'", "CLS, POOLED"):
        triton_client.infer(name, [image_input([image])],
                            outputs=[triton.InferRequestedOutput("EMBEDDING")])
    with expect_error("INVALID_ARGUMENT", "parameter 'resize'", "unknown value 'stretch'"):
        triton_client.infer(name, [image_input([image])], parameters={"resize": "stretch"})
    with expect_error("INVALID_ARGUMENT", "image[0]"):
        triton_client.infer(name, [image_input([b"not an image"])])
    with expect_error("NOT_FOUND", "no-such-model"):
        triton_client.infer("no-such-model", [image_input([image])])
    with expect_error("NOT_FOUND", "version '3'"):
        triton_client.infer(name, [image_input([image])], model_version="3")
    with expect_error("DEADLINE_EXCEEDED"):
        triton_client.infer(name, [image_input([image])], timeout=1)  # microseconds

    # Shapes that do not match the bytes, sent as they are (tritonclient checks its own).
    stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
    short = service_pb2.ModelInferRequest(
        model_name=name,
        inputs=[service_pb2.ModelInferRequest.InferInputTensor(
            name="PIXELS", datatype="UINT8", shape=[2, 48, 64, 3])],
        raw_input_contents=[pixels(42).tobytes()])
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(short, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'PIXELS': shape [2, 48, 64, 3] needs 2 x 9216 bytes" in error.value.details()
    huge = service_pb2.ModelInferRequest(
        model_name=name,
        inputs=[service_pb2.ModelInferRequest.InferInputTensor(
            name="IMAGE", datatype="BYTES", shape=[1 << 40])],
        raw_input_contents=[b"\x01\x00\x00\x00x"])
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(huge, timeout=60)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_images_per_request" in error.value.details()
    assert triton_client.is_server_ready()  # and it still serves
    assert triton_client.infer(name, [image_input([image])]).as_numpy("CLS").shape[0] == 1


def test_calls_are_counted_as_model_infer(server):
    _, _, triton_client, name, log = server
    port = metrics_port(log)
    key = (f'dinov3_requests_total{{code="OK",method="ModelInfer",model="{name}",'
           'protocol="oip-grpc"}')
    before = samples(scrape(port)).get(key, 0.0)
    triton_client.infer(name, [image_input([encoded(pixels(50), "PNG")])])
    assert samples(scrape(port)).get(key, 0.0) == before + 1


def test_api_keys_guard_all_but_the_probes(server, tmp_path):
    """With API keys, ServerLive and ServerReady are exempt like grpc.health (auth.exempt_health:
    probes carry no key and learn only that the server is up); every other call needs a key."""
    _, client, _, name, _ = server
    key = "k3y-0123456789abcdef-for-kserve"
    keys = tmp_path / "keys.txt"
    keys.write_text(key + "\n")
    model = export_random_model(tmp_path, seed=19, depth=1)
    with running_server(model, tmp_path / "server.log", f"--api_keys_file={keys}",
                        api_key=key) as (target, _):
        keyless = triton.InferenceServerClient(url=target)
        assert keyless.is_server_live()
        assert keyless.is_server_ready()
        with expect_error("UNAUTHENTICATED"):
            keyless.is_model_ready(name)
        with expect_error("UNAUTHENTICATED"):
            keyless.get_model_metadata(name)
        image = image_input([encoded(pixels(60), "PNG")])
        with expect_error("UNAUTHENTICATED"):
            keyless.infer(name, [image])
        headers = {"authorization": f"Bearer {key}"}
        assert keyless.is_model_ready(name, headers=headers)
        result = keyless.infer(name, [image], headers=headers)
        assert result.as_numpy("CLS").shape == (1, client.model_info().embed_dim)
        keyless.close()
