"""Unit tests of the Python client's wire-tensor decoding and dense-chunk reassembly (no server).

Proves: FLOAT32 and FLOAT16 tensors encoded by numpy, and BFLOAT16 tensors encoded by torch,
decode bit-exactly (tolerance 0) to the values they encode, with the declared shape (scalars and
empty tensors included); wrong byte lengths and unknown dtypes raise ValueError; DenseChunks in any
order join to the original [grid_h, grid_w, dim] array, and missing, overlapping, out-of-grid or
inconsistent chunks raise ValueError. Uses the generated proto messages, so it also proves that
scripts/setup.sh's stubs import.
"""
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "client", "python"))
from dinov3_client import assemble_dense, decode_tensor, embedding_pb2 as pb2  # noqa: E402


def values(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3


def test_float32_round_trip():
    x = values((3, 5, 7))
    data = x.astype("<f4").tobytes()
    out = decode_tensor(pb2.Tensor(dtype=pb2.FLOAT32, shape=x.shape, data=data))
    assert out.dtype == np.float32 and out.shape == (3, 5, 7)
    np.testing.assert_array_equal(out, x)
    out[0, 0, 0] = 1.0  # writable, not a view of the message bytes


def test_float16_round_trip():
    x = values((4, 6)).astype(np.float16)
    out = decode_tensor(pb2.Tensor(dtype=pb2.FLOAT16, shape=[4, 6], data=x.astype("<f2").tobytes()))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, x)


def test_bfloat16_round_trip_against_torch():
    x = torch.from_numpy(values((2, 3, 384))).to(torch.bfloat16)
    data = x.view(torch.int16).numpy().astype("<i2").tobytes()
    out = decode_tensor(pb2.Tensor(dtype=pb2.BFLOAT16, shape=[2, 3, 384], data=data))
    assert out.dtype == np.float32 and out.shape == (2, 3, 384)
    np.testing.assert_array_equal(out, x.float().numpy())


def test_bfloat16_special_values():
    x = torch.tensor([0.0, -0.0, 1.0, -2.5, float("inf"), float("-inf"), 1e38],
                     dtype=torch.bfloat16)
    data = x.view(torch.int16).numpy().tobytes()
    out = decode_tensor(pb2.Tensor(dtype=pb2.BFLOAT16, shape=[7], data=data))
    np.testing.assert_array_equal(out, x.float().numpy())
    assert np.signbit(out[1])


@pytest.mark.parametrize("shape", [[], [0], [0, 384], [1], [196, 384]])
def test_shapes(shape):
    x = values(shape)
    out = decode_tensor(pb2.Tensor(dtype=pb2.FLOAT32, shape=shape, data=x.tobytes()))
    assert out.shape == tuple(shape)


@pytest.mark.parametrize("dtype,nbytes", [(pb2.FLOAT32, 23), (pb2.FLOAT32, 28),
                                          (pb2.FLOAT16, 11), (pb2.BFLOAT16, 0)])
def test_wrong_byte_length_raises(dtype, nbytes):
    with pytest.raises(ValueError, match="needs .* bytes"):
        decode_tensor(pb2.Tensor(dtype=dtype, shape=[2, 3], data=bytes(nbytes)))


def test_unknown_dtype_and_negative_shape_raise():
    with pytest.raises(ValueError, match="dtype 7"):
        decode_tensor(pb2.Tensor(dtype=7, shape=[1], data=bytes(4)))
    with pytest.raises(ValueError, match="negative"):
        decode_tensor(pb2.Tensor(dtype=pb2.FLOAT32, shape=[-1], data=b""))


def chunks_of(grid, starts, dtype=pb2.FLOAT32):
    """DenseChunks of `grid` [h, w, d] starting at each of `starts` (in that order)."""
    h, w, d = grid.shape
    bounds = sorted(starts) + [h]
    stop = {s: bounds[bounds.index(s) + 1] for s in starts}
    np_dtype = "<f4" if dtype == pb2.FLOAT32 else "<f2"
    return [pb2.DenseChunk(grid_height=h, grid_width=w, dim=d, dtype=dtype, row_start=s,
                           rows=pb2.Tensor(dtype=dtype, shape=[stop[s] - s, w, d],
                                           data=grid[s:stop[s]].astype(np_dtype).tobytes()))
            for s in starts]


def test_dense_in_order_and_out_of_order():
    grid = values((13, 20, 8))
    np.testing.assert_array_equal(assemble_dense(chunks_of(grid, [0, 4, 8, 12])), grid)
    np.testing.assert_array_equal(assemble_dense(chunks_of(grid, [8, 0, 12, 4])), grid)
    np.testing.assert_array_equal(assemble_dense(chunks_of(grid, [0])), grid)


def test_dense_float16_keeps_dtype():
    grid = values((3, 4, 2)).astype(np.float16)
    out = assemble_dense(chunks_of(grid, [2, 0], dtype=pb2.FLOAT16))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, grid)


def test_dense_missing_rows_raise():
    grid = values((13, 20, 8))
    chunks = chunks_of(grid, [0, 4, 8, 12])
    with pytest.raises(ValueError, match=r"missing: \[4, 5, 6, 7\]"):
        assemble_dense([chunks[0], chunks[2], chunks[3]])
    with pytest.raises(ValueError, match="missing"):
        assemble_dense(chunks[:3])  # the last row
    with pytest.raises(ValueError, match="no dense chunks"):
        assemble_dense([])


def test_dense_overlap_outside_and_inconsistent_raise():
    grid = values((6, 5, 4))
    a, b = chunks_of(grid, [0, 3])
    with pytest.raises(ValueError, match="overlap"):
        assemble_dense([a, b, a])
    late = pb2.DenseChunk()
    late.CopyFrom(b)
    late.row_start = 4
    with pytest.raises(ValueError, match="outside the grid"):
        assemble_dense([a, late])
    other = pb2.DenseChunk()
    other.CopyFrom(b)
    other.grid_width = 6
    with pytest.raises(ValueError, match="disagree"):
        assemble_dense([a, other])
    bad_rows = pb2.DenseChunk()
    bad_rows.CopyFrom(b)
    bad_rows.rows.shape[:] = [3, 20]
    with pytest.raises(ValueError, match="expected \\[rows, 5, 4\\]"):
        assemble_dense([a, bad_rows])
