"""A DataDriftTrigger's current window, kept from one decision to the next.

Consecutive current windows overlap whenever a window is longer than the evaluation interval: a decision adds
one interval of samples at the end and drops as many at the start. So a window is cut into chunks of
`evaluation_interval_data_points` samples counted back from its end (the next decision's chunks are the same,
one more at the end), and each chunk is read and embedded once, whole. The oldest chunk, only partly in the
window, is still computed whole: a chunk is always the interval's worth of samples up to its last one, so a
decision made after a restart, with nothing kept, computes exactly what the uninterrupted service did.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from modyn_stream.triggers.batched import merged, unreadable
from modyn_stream.triggers.policies import Boundary


@dataclass(frozen=True)
class Chunk:
    id: tuple  # (event time, key) of its last sample, its size, a checksum of its keys
    keys: tuple[str, ...]
    vectors: np.ndarray  # of its readable samples, in order
    kept: np.ndarray  # which of `keys` are readable
    skipped: tuple[str, ...]


@dataclass(frozen=True)
class ChunkedWindow:
    vectors: np.ndarray  # the window's readable samples
    chunks: list[tuple[tuple, np.ndarray, np.ndarray | None]] | None  # (id, vectors, rows of them in the window)
    skipped: tuple[str, ...]  # keys of the window's unreadable samples


class CurrentWindows:
    """The chunks of each pipeline's last current window (for one model version), reused by the next decision."""

    def __init__(self, data) -> None:
        self.data = data  # a WindowData
        self._kept: dict[str, tuple[int | None, dict[tuple, Chunk]]] = {}  # per pipeline: model, chunks by last sample

    def window(self, pid: str, config, index, rows: pa.Table, model_index: int | None) -> ChunkedWindow:
        """The vectors of the window `rows` (consecutive samples in (event_time, key) order, as
        `ClickHouseSampleIndex.window` gives them), from chunks read once."""
        size = config.trigger.evaluation_interval_data_points
        if rows.num_rows < size:  # a chunk of it would read more than the window: no later window shares it
            vectors, kept = self.data.vectors(pid, config, rows, model_index)
            return ChunkedWindow(vectors, None, unreadable(rows, kept))
        model, known = self._kept.get(pid, (model_index, {}))
        known = known if model == model_index else {}
        keys, times = rows["key"].to_pylist(), rows["t"].to_pylist()
        chunks, parts, skipped = {}, [], ()
        for start in reversed(range(rows.num_rows, 0, -size)):  # chunk ends, newest last
            first = max(start - size, 0)
            chunk = known.get((times[start - 1], keys[start - 1]))
            if chunk is None or chunk.keys[len(chunk.keys) - (start - first) :] != tuple(keys[first:start]):
                whole = rows.slice(first, size) if start - first == size else None
                chunk = self._read(pid, config, index, whole, Boundary(times[start - 1], keys[start - 1]), model_index)
            chunks[chunk.id[0]] = chunk
            in_window = np.arange(len(chunk.keys))[chunk.kept] >= len(chunk.keys) - (start - first)
            parts.append((chunk.id, chunk.vectors, None if in_window.all() else in_window))
            skipped = merged(skipped, tuple(chunk.skipped[len(chunk.skipped) - _tail(chunk, start - first) :]))
        self._kept[pid] = (model_index, chunks)
        vectors = [v if rows_in is None else v[rows_in] for _, v, rows_in in parts if len(v)]
        vectors = np.concatenate(vectors) if vectors else np.zeros((0, 1))
        return ChunkedWindow(vectors, parts, skipped)

    def _read(self, pid, config, index, rows: pa.Table | None, last: Boundary, model_index) -> Chunk:
        """The chunk ending at `last`: `rows`, or (None) the interval's worth of samples up to `last`."""
        if rows is None:
            rows = index.window(last, last=config.trigger.evaluation_interval_data_points)
        vectors, kept = self.data.vectors(pid, config, rows, model_index)
        keys = tuple(rows["key"].to_pylist())
        checksum = zlib.crc32("\n".join(keys).encode())
        return Chunk(((last.event_time, last.key), len(keys), checksum), keys, vectors, kept, unreadable(rows, kept))


def _tail(chunk: Chunk, rows: int) -> int:
    """How many of the chunk's unreadable keys are among its last `rows` samples."""
    return int((~chunk.kept[len(chunk.keys) - rows :]).sum())
