"""Wire tensors to numpy, and dense chunks to one [grid_h, grid_w, dim] array.

Independent of the generated stubs: anything with the proto's attribute names works (a
`dinov3.v1.Tensor`, a `DenseChunk`, or a stand-in in tests). Tensors are {dtype, shape, data},
row-major little-endian. FLOAT32 decodes to float32, FLOAT16 to float16, BFLOAT16 to float32
(exactly: bf16 bits are the top 16 bits of a float32). Malformed input raises ValueError.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

# Values of the proto enum dinov3.v1.DType.
FLOAT32, FLOAT16, BFLOAT16 = 0, 1, 2
DTYPE_NAMES = {"float32": FLOAT32, "float16": FLOAT16, "bfloat16": BFLOAT16}
_ITEM_SIZE = {FLOAT32: 4, FLOAT16: 2, BFLOAT16: 2}


def dtype_value(dtype: str | int) -> int:
    """The proto DType value of "float32" / "float16" / "bfloat16" (or of the value itself)."""
    if isinstance(dtype, str):
        try:
            return DTYPE_NAMES[dtype.lower()]
        except KeyError:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPE_NAMES)}")
    return int(dtype)


def decode_tensor(tensor) -> np.ndarray:
    """A writable numpy array of `tensor` (float32, or float16 for FLOAT16)."""
    dtype = int(tensor.dtype)
    if dtype not in _ITEM_SIZE:
        raise ValueError(f"unknown tensor dtype {dtype}")
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise ValueError(f"negative dimension in tensor shape {list(shape)}")
    data = bytes(tensor.data)
    expected = math.prod(shape) * _ITEM_SIZE[dtype]
    if len(data) != expected:
        raise ValueError(f"tensor of shape {list(shape)} needs {expected} bytes of data, "
                         f"got {len(data)}")
    if dtype == FLOAT32:
        values = np.frombuffer(data, dtype="<f4").astype(np.float32)
    elif dtype == FLOAT16:
        values = np.frombuffer(data, dtype="<f2").astype(np.float16)
    else:
        values = (np.frombuffer(data, dtype="<u2").astype("<u4") << 16).view("<f4")
        values = values.astype(np.float32)
    return values.reshape(shape)


def assemble_dense(chunks: Iterable) -> np.ndarray:
    """Joins DenseChunks (any order) into one [grid_height, grid_width, dim] array.

    The array has the dtype decode_tensor gives the chunks' rows.

    Raises ValueError when the chunks disagree on the header, a chunk's rows have the wrong
    shape or fall outside the grid, rows overlap, or rows are missing.
    """
    out = None
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
        if rows.ndim != 3 or rows.shape[1:] != (grid_w, dim):
            raise ValueError(f"dense chunk at row {start} has shape {list(rows.shape)}, "
                             f"expected [rows, {grid_w}, {dim}]")
        stop = start + rows.shape[0]
        if stop > grid_h:
            raise ValueError(f"dense chunk rows [{start}, {stop}) outside the grid of {grid_h}")
        if out is None:
            out = np.empty(header, dtype=rows.dtype)  # float16 for FLOAT16, else float32
        elif rows.dtype != out.dtype:
            raise ValueError(f"dense chunk at row {start} has dtype {rows.dtype}, not {out.dtype}")
        if filled[start:stop].any():
            raise ValueError(f"dense chunk rows [{start}, {stop}) overlap earlier rows")
        out[start:stop] = rows
        filled[start:stop] = True
    if header is None:
        raise ValueError("no dense chunks received")
    if not filled.all():
        missing = np.flatnonzero(~filled)
        raise ValueError(f"dense rows missing: {missing.tolist()[:10]} of {header[0]}")
    return out
