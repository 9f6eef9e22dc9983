"""EmbeddingClient: a typed, synchronous Python client of dinov3.v1.EmbeddingService.

Images are given as encoded file bytes (JPEG/PNG/WebP/BMP), a path to such a file, or a numpy
uint8 array (H x W x 3 RGB, H x W x 4 RGBA, or H x W gray) sent as raw pixels. Embeddings come
back as numpy arrays (float32; float16 for dtype="float16"; bfloat16 is widened to float32;
dtype "int8" / "uint8" / "binary" give the stored int8 / uint8 / packed-bit uint8 arrays, with
the int8 and uint8 per-vector scales in EmbeddingResult.scales: see tensors.py).

Errors: every failed RPC raises EmbeddingError, which carries the gRPC status `code`
(grpc.StatusCode) and the server's `details` (e.g. "image[3]: unsupported format GIF").
Thread-safety: one client may be used from many threads (gRPC channels are thread-safe).
"""
from __future__ import annotations

import collections
import dataclasses
import os
from typing import Iterable, Iterator, Optional, Sequence, Union

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dinov3_client._stubs import embedding_pb2 as pb2
from dinov3_client._stubs import embedding_pb2_grpc as pb2_grpc
from dinov3_client.tensors import (assemble_dense, assemble_dense_layers, decode_tensor,
                                   dtype_value, tensor_scales)

ImageLike = Union[bytes, bytearray, memoryview, np.ndarray, str, os.PathLike, "pb2.Image"]
PreprocessLike = Union[None, dict, "pb2.Preprocess"]

OUTPUT_NAMES = {"cls": pb2.CLS, "pooled": pb2.POOLED, "patch_tokens": pb2.PATCH_TOKENS,
                "registers": pb2.REGISTERS}
RESIZE_MODES = {"fixed": pb2.RESIZE_FIXED,
                "shorter_side_center_crop": pb2.RESIZE_SHORTER_SIDE_CENTER_CROP,
                "keep_aspect": pb2.RESIZE_KEEP_ASPECT}
DECODE_MODES = {"server_default": pb2.DECODE_SERVER_DEFAULT, "exact": pb2.DECODE_EXACT,
                "fast": pb2.DECODE_FAST}
_RAW_FORMATS = {2: pb2.GRAY8, 3: pb2.RGB8, 4: pb2.RGBA8}  # ndim 2 is gray; else channel count
DEFAULT_MAX_MESSAGE_BYTES = 256 << 20
_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class EmbeddingError(Exception):
    """A failed RPC: `code` is the grpc.StatusCode, `details` the server's message."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str):
        super().__init__(f"{method} failed: {code.name}: {details}")
        self.method, self.code, self.details = method, code, details


_OUTPUT_NAMES = ("cls", "pooled", "registers", "patch_tokens")


def _decode_outputs(message) -> tuple[dict, dict]:
    """{name: array} of the outputs a message (Embedding or LayerEmbedding) carries, and the
    int8 / uint8 scales of those that have them."""
    present = [n for n in _OUTPUT_NAMES if message.HasField(n)]
    values = {n: decode_tensor(getattr(message, n)) for n in present}
    scales = {n: tensor_scales(getattr(message, n)) for n in present}
    return values, {n: s for n, s in scales.items() if s is not None}


@dataclasses.dataclass
class LayerResult:
    """One intermediate block's outputs of one image (embed(layers=...)), as EmbeddingResult's."""
    layer: int  # 0-based block index
    cls: Optional[np.ndarray]
    pooled: Optional[np.ndarray]
    registers: Optional[np.ndarray]
    patch_tokens: Optional[np.ndarray]
    scales: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_proto(cls, layer: "pb2.LayerEmbedding") -> "LayerResult":
        values, scales = _decode_outputs(layer)
        return cls(layer.layer, *(values.get(n) for n in _OUTPUT_NAMES), scales)


@dataclasses.dataclass
class EmbeddingResult:
    """The embeddings of one image; outputs that were not requested are None."""
    id: str
    cls: Optional[np.ndarray]           # [D]
    pooled: Optional[np.ndarray]        # [D]
    registers: Optional[np.ndarray]     # [num_registers, D]
    patch_tokens: Optional[np.ndarray]  # [grid_height * grid_width, D], row-major over the grid
    grid_height: int
    grid_width: int
    # dtype "int8" / "uint8": each present output's per-vector scales (its shape minus the
    # last dimension), by output name; x ~ (q - offset) * scale (tensors.dequantize).
    scales: dict = dataclasses.field(default_factory=dict)
    # The intermediate layers asked for (embed(layers=... or last_layers=...)), in that order.
    layers: list = dataclasses.field(default_factory=list)

    @classmethod
    def from_proto(cls, emb: "pb2.Embedding") -> "EmbeddingResult":
        values, scales = _decode_outputs(emb)
        return cls(emb.id, *(values.get(n) for n in _OUTPUT_NAMES), emb.grid_height,
                   emb.grid_width, scales, [LayerResult.from_proto(x) for x in emb.layers])


@dataclasses.dataclass
class StreamAnswer:
    """One StreamEmbed response: the request's results, or `error` when that request failed."""
    request_id: str
    results: list[EmbeddingResult]
    error: Optional[EmbeddingError] = None


def make_image(image: ImageLike, image_id: str = "") -> "pb2.Image":
    """The proto Image of encoded bytes, a file path, a uint8 numpy array or an Image."""
    if isinstance(image, pb2.Image):
        out = pb2.Image()
        out.CopyFrom(image)
        if image_id:
            out.id = image_id
        return out
    if isinstance(image, (bytes, bytearray, memoryview)):
        return pb2.Image(encoded=bytes(image), id=image_id)
    if isinstance(image, (str, os.PathLike)):
        with open(image, "rb") as f:
            return pb2.Image(encoded=f.read(), id=image_id)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"numpy images must be uint8, got {image.dtype}")
        key = 2 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else 0)
        if key not in _RAW_FORMATS:
            raise ValueError(f"numpy image of shape {image.shape}: expected HxW, HxWx3 or HxWx4")
        raw = pb2.RawImage(width=image.shape[1], height=image.shape[0], format=_RAW_FORMATS[key],
                           data=np.ascontiguousarray(image).tobytes())
        return pb2.Image(raw=raw, id=image_id)
    raise TypeError(f"unsupported image type {type(image).__name__}")


def _enum_value(value, names: dict, prefix: str, what: str):
    """`value` as the enum number: a number as is, or a name with or without `prefix`."""
    if not isinstance(value, str):
        return value
    key = value.lower().removeprefix(prefix)
    if key not in names:
        raise ValueError(f"unknown {what} {value!r}; expected one of {sorted(names)}")
    return names[key]


def make_preprocess(preprocess: PreprocessLike) -> Optional["pb2.Preprocess"]:
    """None, a Preprocess, or a dict like {"mode": "keep_aspect", "max_patches": 1024} or
    {"decode": "fast"} (DECODE_FAST: JPEG DCT scaling for large photos)."""
    if preprocess is None or isinstance(preprocess, pb2.Preprocess):
        return preprocess
    fields = dict(preprocess)
    fields["mode"] = _enum_value(fields.get("mode", "fixed"), RESIZE_MODES, "resize_",
                                 "resize mode")
    fields["decode"] = _enum_value(fields.get("decode", "server_default"), DECODE_MODES,
                                   "decode_", "decode mode")
    return pb2.Preprocess(**fields)


def _output_value(output: Union[str, int]) -> int:
    if isinstance(output, str):
        try:
            return OUTPUT_NAMES[output.lower()]
        except KeyError:
            raise ValueError(f"unknown output {output!r}; expected one of {sorted(OUTPUT_NAMES)}")
    return int(output)


def tls_credentials(ca_file: Optional[str] = None, cert_file: Optional[str] = None,
                    key_file: Optional[str] = None) -> grpc.ChannelCredentials:
    """TLS channel credentials from PEM files: `ca_file` verifies the server (None: the system's
    roots); `cert_file` + `key_file` are the client's certificate for mutual TLS."""
    def read(path):
        if path is None:
            return None
        with open(path, "rb") as f:
            return f.read()
    return grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))


class _ApiKeyInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                         grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds 'authorization: Bearer <key>' to every call (also on plaintext loopback channels,
    where gRPC's call credentials would not be sent)."""

    def __init__(self, key: str):
        self._metadata = ("authorization", f"Bearer {key}")

    def _details(self, details):
        metadata = list(details.metadata or []) + [self._metadata]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class EmbeddingClient:
    """A channel to the service. Use as a context manager, or call close().

    `credentials`: channel credentials for TLS (see tls_credentials); None = plaintext.
    `api_key`: sent as 'authorization: Bearer <key>' with every call (servers started with
    auth.api_keys_file). `options`: extra gRPC channel arguments, e.g.
    [("grpc.keepalive_time_ms", 30000)] or [("grpc.ssl_target_name_override", "name")].
    `model`: the served model the calls use unless a call names another (list_models() lists
    them); "" = the server's default model.
    """

    def __init__(self, target: str = "localhost:50051", timeout: Optional[float] = 30.0,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                 api_key: Optional[str] = None, options: Sequence[tuple] = (),
                 model: str = ""):
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes), *options]
        self.timeout = timeout
        self.model = model
        self.channel = (grpc.secure_channel(target, credentials, options) if credentials
                        else grpc.insecure_channel(target, options))
        if api_key is not None:
            self.channel = grpc.intercept_channel(self.channel, _ApiKeyInterceptor(api_key))
        self.stub = pb2_grpc.EmbeddingServiceStub(self.channel)  # the raw API, for anything else
        self.admin_stub = pb2_grpc.ModelAdminStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> "EmbeddingClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def build_request(self, images: Sequence[ImageLike], outputs=("cls", "pooled"),
                      dtype: Union[str, int] = "float32", l2_normalize: bool = False,
                      preprocess: PreprocessLike = None, ids: Optional[Sequence[str]] = None,
                      request_id: str = "", model: Optional[str] = None,
                      layers: Sequence[int] = (), last_layers: int = 0,
                      layer_norm: Optional[bool] = None) -> "pb2.EmbedRequest":
        """The EmbedRequest that embed() sends (for StreamEmbed, or to adjust by hand).
        `model` None = the client's model. `layers` (block indices, negative from the end) or
        `last_layers` (the last n blocks) add intermediate layers; `layer_norm` None = the
        server's default (the final LayerNorm applied)."""
        ids = list(ids) if ids is not None else [""] * len(images)
        if len(ids) != len(images):
            raise ValueError(f"{len(ids)} ids for {len(images)} images")
        return pb2.EmbedRequest(
            images=[make_image(im, i) for im, i in zip(images, ids)],
            outputs=[_output_value(o) for o in outputs], dtype=dtype_value(dtype),
            l2_normalize=l2_normalize, preprocess=make_preprocess(preprocess),
            request_id=request_id, model=self.model if model is None else model,
            layers=list(layers), last_layers=last_layers,
            **({} if layer_norm is None else {"layer_norm": layer_norm}))

    def embed(self, images: Sequence[ImageLike], outputs=("cls", "pooled"),
              dtype: Union[str, int] = "float32", l2_normalize: bool = False,
              preprocess: PreprocessLike = None,
              ids: Optional[Sequence[str]] = None,
              model: Optional[str] = None, layers: Sequence[int] = (), last_layers: int = 0,
              layer_norm: Optional[bool] = None) -> list[EmbeddingResult]:
        """Embeds `images` in one Embed call; results are in the order of `images`.
        `model` None = the client's model; layers, last_layers, layer_norm: build_request."""
        request = self.build_request(images, outputs, dtype, l2_normalize, preprocess, ids,
                                     model=model, layers=layers, last_layers=last_layers,
                                     layer_norm=layer_norm)
        try:
            response = self.stub.Embed(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise EmbeddingError("Embed", e.code(), e.details()) from None
        return [EmbeddingResult.from_proto(e) for e in response.embeddings]

    def stream_embed(self, requests: Iterable["pb2.EmbedRequest"], timeout: Optional[float] = None
                     ) -> Iterator[StreamAnswer]:
        """StreamEmbed: one StreamAnswer per request, possibly out of order.

        A request that fails alone comes back as an answer with `error` set (the stream goes
        on); a failure of the whole stream raises EmbeddingError.
        """
        try:
            for response in self.stub.StreamEmbed(iter(requests), timeout=timeout):
                error = None
                if response.HasField("error"):
                    error = EmbeddingError("StreamEmbed", _STATUS_CODES.get(
                        response.error.code, grpc.StatusCode.UNKNOWN), response.error.message)
                yield StreamAnswer(response.request_id,
                                   [EmbeddingResult.from_proto(e) for e in response.embeddings],
                                   error)
        except grpc.RpcError as e:
            raise EmbeddingError("StreamEmbed", e.code(), e.details()) from None

    def embed_dense(self, image: ImageLike, dtype: Union[str, int] = "float32",
                    l2_normalize: bool = False, preprocess: PreprocessLike = None,
                    rows_per_chunk: int = 0, model: Optional[str] = None) -> np.ndarray:
        """Dense patch features [grid_height, grid_width, dim] of one image via EmbedDense.

        preprocess None is the server default (RESIZE_FIXED); {"mode": "keep_aspect"} keeps
        the image's aspect ratio, the usual choice for dense features. For dtype "int8" and
        "uint8" the per-patch scales are dropped: use assemble_dense(..., with_scales=True) on
        the stub's stream to keep them.
        """
        request = pb2.EmbedDenseRequest(
            image=make_image(image), dtype=dtype_value(dtype), l2_normalize=l2_normalize,
            preprocess=make_preprocess(preprocess), rows_per_chunk=rows_per_chunk,
            model=self.model if model is None else model)
        try:
            return assemble_dense(self.stub.EmbedDense(request, timeout=self.timeout))
        except grpc.RpcError as e:
            raise EmbeddingError("EmbedDense", e.code(), e.details()) from None

    def embed_dense_layers(self, image: ImageLike, layers: Sequence[int] = (),
                           last_layers: int = 0, layer_norm: Optional[bool] = None,
                           dtype: Union[str, int] = "float32", l2_normalize: bool = False,
                           preprocess: PreprocessLike = None, rows_per_chunk: int = 0,
                           model: Optional[str] = None, with_scales: bool = False) -> tuple:
        """embed_dense with intermediate layers (`layers` or `last_layers`, see build_request):
        (the final [grid_height, grid_width, dim] features, {block index: its features}); with
        `with_scales` (dtype int8 / uint8) each grid is an (array, per-patch scales) pair."""
        request = pb2.EmbedDenseRequest(
            image=make_image(image), dtype=dtype_value(dtype), l2_normalize=l2_normalize,
            preprocess=make_preprocess(preprocess), rows_per_chunk=rows_per_chunk,
            model=self.model if model is None else model, layers=list(layers),
            last_layers=last_layers, **({} if layer_norm is None else {"layer_norm": layer_norm}))
        try:
            return assemble_dense_layers(self.stub.EmbedDense(request, timeout=self.timeout),
                                         with_scales)
        except grpc.RpcError as e:
            raise EmbeddingError("EmbedDense", e.code(), e.details()) from None

    def model_info(self, model: Optional[str] = None) -> "pb2.ModelInfo":
        """A served model and the server's limits (the ModelInfo proto message); `model` None =
        the client's model."""
        request = pb2.GetModelInfoRequest(model=self.model if model is None else model)
        try:
            return self.stub.GetModelInfo(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise EmbeddingError("GetModelInfo", e.code(), e.details()) from None

    def list_models(self) -> list["pb2.ModelStatus"]:
        """Every served model (ModelStatus: name, state name via
        pb2.ModelStatus.State.Name(m.state), is_default, message, info)."""
        try:
            return list(self.stub.ListModels(pb2.ListModelsRequest(),
                                             timeout=self.timeout).models)
        except grpc.RpcError as e:
            raise EmbeddingError("ListModels", e.code(), e.details()) from None

    def load_model(self, name: str, timeout: Optional[float] = None) -> "pb2.LoadModelResponse":
        """ModelAdmin.LoadModel: serves <the server's model repository>/<name>.pt as `name`,
        replacing the export it served under that name. Needs a client made with an admin key
        (api_key=); `timeout` None = the client's (a load includes the warm-up)."""
        try:
            return self.admin_stub.LoadModel(pb2.LoadModelRequest(name=name),
                                             timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise EmbeddingError("LoadModel", e.code(), e.details()) from None

    def unload_model(self, name: str, timeout: Optional[float] = None
                     ) -> "pb2.UnloadModelResponse":
        """ModelAdmin.UnloadModel (admin key needed); returns once the model is freed."""
        try:
            return self.admin_stub.UnloadModel(pb2.UnloadModelRequest(name=name),
                                               timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise EmbeddingError("UnloadModel", e.code(), e.details()) from None

    def health(self, service: str = "") -> str:
        """Standard gRPC health status name: "SERVING", "NOT_SERVING", "UNKNOWN", ..."""
        try:
            response = self._health.Check(health_pb2.HealthCheckRequest(service=service),
                                          timeout=self.timeout)
        except grpc.RpcError as e:
            raise EmbeddingError("Health.Check", e.code(), e.details()) from None
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
