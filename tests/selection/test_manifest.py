"""Manifest columns as NumPy arrays: the same values as pyarrow's own conversion, across chunks and slices."""

import numpy as np
import pyarrow as pa

from modyn_stream.selection.manifest import numeric


def test_numeric_matches_to_numpy_on_sliced_chunked_columns():
    chunks = [pa.array(np.arange(5, dtype=np.int64) + 10 * k) for k in range(3)]
    column = pa.chunked_array(chunks)
    for start, length in [(0, 15), (3, 5), (4, 9), (14, 1), (7, 0)]:
        part = column.slice(start, length)
        got = numeric(part)
        assert got.dtype == np.int64 and got.tolist() == part.to_numpy().tolist()
    weights = numeric(pa.chunked_array([pa.array([0.5, 2.0], pa.float32())]))
    assert weights.dtype == np.float32 and weights.tolist() == [0.5, 2.0]
    weights[0] = 1.0  # its own memory: torch.from_numpy may write to it
