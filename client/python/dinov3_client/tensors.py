"""Wire tensors to numpy, and dense chunks to one [grid_h, grid_w, dim] array.

Independent of the generated stubs: anything with the proto's attribute names works (a
`dinov3.v1.Tensor`, a `DenseChunk`, or a stand-in in tests). Tensors are {dtype, shape, data},
row-major little-endian. FLOAT32 decodes to float32, FLOAT16 to float16, BFLOAT16 to float32
(exactly: bf16 bits are the top 16 bits of a float32). The compact dtypes decode to their
stored integers: INT8 to int8, UINT8 to uint8, BINARY to uint8 packed sign bits (last dimension
ceil(dim / 8), least significant bit first: np.unpackbits(a, axis=-1, bitorder="little")); INT8
and UINT8 carry one float32 scale per vector (tensor_scales), dequantize() gives floats.
Malformed input raises ValueError.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

# Values of the proto enum dinov3.v1.DType.
FLOAT32, FLOAT16, BFLOAT16, INT8, UINT8, BINARY = 0, 1, 2, 3, 4, 5
DTYPE_NAMES = {"float32": FLOAT32, "float16": FLOAT16, "bfloat16": BFLOAT16, "int8": INT8,
               "uint8": UINT8, "binary": BINARY}
_ITEM_SIZE = {FLOAT32: 4, FLOAT16: 2, BFLOAT16: 2, INT8: 1, UINT8: 1, BINARY: 1}
_SCALED = (INT8, UINT8)


def _stored_shape(dtype: int, shape: tuple) -> tuple:
    """The shape of the stored values: BINARY packs the last dimension 8 elements per byte."""
    if dtype == BINARY and shape:
        return (*shape[:-1], (shape[-1] + 7) // 8)
    return shape


def dtype_value(dtype: str | int) -> int:
    """The proto DType value of "float32" / "float16" / "bfloat16" (or of the value itself)."""
    if isinstance(dtype, str):
        try:
            return DTYPE_NAMES[dtype.lower()]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPE_NAMES)}")
    return int(dtype)


def decode_tensor(tensor) -> np.ndarray:
    """A writable numpy array of `tensor`: float32 (float16 for FLOAT16), or the stored integers
    of a compact dtype (see the module docstring)."""
    dtype = int(tensor.dtype)
    if dtype not in _ITEM_SIZE:
        raise ValueError(f"unknown tensor dtype {dtype}")
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in tensor shape {list(shape)}")
    data = bytes(tensor.data)
    stored = _stored_shape(dtype, shape)
    expected = math.prod(stored) * _ITEM_SIZE[dtype]
    if len(data) != expected:
        raise ValueError(f"tensor of shape {list(shape)} needs {expected} bytes of data, "
                         f"got {len(data)}")
    vectors = math.prod(shape[:-1]) if shape else 1
    scales = len(getattr(tensor, "scales", ()))
    if scales != (vectors if dtype in _SCALED else 0):
        raise ValueError(f"tensor of shape {list(shape)} and dtype {dtype} has {scales} scales")
    if dtype == INT8:
        return np.frombuffer(data, dtype=np.int8).reshape(stored).copy()
    if dtype in (UINT8, BINARY):
        return np.frombuffer(data, dtype=np.uint8).reshape(stored).copy()
    if dtype == FLOAT32:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    elif dtype == FLOAT16:
        values = np.frombuffer(data, dtype="<f2").astype(np.float16)
    else:
        values = (np.frombuffer(data, dtype="<u2").astype("<u4") << 16).view("<f4")
        values = values.astype(np.float32)
    return values.reshape(shape)


def tensor_scales(tensor) -> np.ndarray | None:
    """The per-vector float32 scales of an INT8 / UINT8 tensor (shape[:-1]); None otherwise."""
    if int(tensor.dtype) not in _SCALED:
        return None
    shape = tuple(int(d) for d in tensor.shape)
    return np.asarray(tensor.scales, dtype=np.float32).reshape(shape[:-1])


def dequantize(values: np.ndarray, dtype: str | int, scales: np.ndarray | None = None,
               dim: int | None = None) -> np.ndarray:
    """Float32 values of decoded compact data: INT8 q * scale, UINT8 (u - 128) * scale, BINARY
    the bits (0 or 1) of the first `dim` elements (default: all 8 per byte). Float arrays are
    returned as float32."""
    dtype = dtype_value(dtype)
    if dtype == BINARY:
        bits = np.unpackbits(values, axis=-1, bitorder="little")
        return bits[..., :dim if dim is not None else bits.shape[-1]].astype(np.float32)
    if dtype in _SCALED:
        q = values.astype(np.float32) - (128.0 if dtype == UINT8 else 0.0)
        return q * np.asarray(scales, dtype=np.float32)[..., None]
    return values.astype(np.float32)


def assemble_dense(chunks: Iterable, with_scales: bool = False):
    """Joins DenseChunks (any order) into one [grid_height, grid_width, dim] array.

    The array has the dtype decode_tensor gives the chunks' rows (BINARY: last dimension
    ceil(dim / 8)). With `with_scales`, returns (array, scales): the [grid_height, grid_width]
    float32 scales of INT8 / UINT8 chunks, None for the other dtypes.

    Raises ValueError when the chunks disagree on the header, a chunk's rows have the wrong
    shape or fall outside the grid, rows overlap, or rows are missing.
    """
    out = None
    scales = None
    header = None
    filled = None
    for chunk in chunks:
        this = (int(chunk.grid_height), int(chunk.grid_width), int(chunk.dim))
        if header is None:
            header = this
            filled = np.zeros(this[0], dtype=bool)
        elif this != header:
            raise ValueError(f"dense chunks disagree: grid/dim {list(this)} after {list(header)}")
        rows = decode_tensor(chunk.rows)
        start, grid_h, grid_w, dim = int(chunk.row_start), *header
        stored_dim = _stored_shape(int(chunk.rows.dtype), (dim,))[0]
        if rows.ndim != 3 or rows.shape[1:] != (grid_w, stored_dim):
            raise ValueError(f"dense chunk at row {start} has shape {list(rows.shape)}, "
                             f"expected [rows, {grid_w}, {stored_dim}]")
        stop = start + rows.shape[0]
        if stop > grid_h:
            raise ValueError(f"dense chunk rows [{start}, {stop}) outside the grid of {grid_h}")
        if out is None:  # the decoded dtype: float16 for FLOAT16, int8 for INT8, ...
            out = np.empty((grid_h, grid_w, stored_dim), dtype=rows.dtype)
        elif rows.dtype != out.dtype:
            raise ValueError(f"dense chunk at row {start} has dtype {rows.dtype}, not {out.dtype}")
        if filled[start:stop].any():
            raise ValueError(f"dense chunk rows [{start}, {stop}) overlap earlier rows")
        out[start:stop] = rows
        chunk_scales = tensor_scales(chunk.rows)
        if chunk_scales is not None:
            if scales is None:
                scales = np.empty((grid_h, grid_w), dtype=np.float32)
            scales[start:stop] = chunk_scales
        filled[start:stop] = True
    if header is None:
        raise ValueError("no dense chunks received")
    if not filled.all():
        missing = np.flatnonzero(~filled)
        raise ValueError(f"dense rows missing: {missing.tolist()[:10]} of {header[0]}")
    return (out, scales) if with_scales else out


def assemble_dense_layers(chunks: Iterable, with_scales: bool = False) -> tuple:
    """Joins the DenseChunks of an EmbedDense call with intermediate layers: (the final
    features, {block index: that block's features}), each as assemble_dense gives them (with
    `with_scales`: each an (array, scales) pair). Chunks without `layer` are the final patch
    tokens."""
    groups = {}
    for chunk in chunks:
        key = int(chunk.layer) if chunk.HasField("layer") else None
        groups.setdefault(key, []).append(chunk)
    if None not in groups:
        raise ValueError("no dense chunks of the final patch tokens received")
    final = assemble_dense(groups.pop(None), with_scales)
    return final, {layer: assemble_dense(group, with_scales) for layer, group in groups.items()}
