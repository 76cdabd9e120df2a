"""Manifest -> tensors in a background thread, a few chunks ahead of the training loop.

Each chunk is one fetch (cache first, then the partitions read in order) and one vectorised decode, so
the loop trains on chunk k while chunk k+1 is read; errors surface in the loop, with their message.
The fetcher keeps its partitions assigned from chunk to chunk and is released when the set ends.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import torch

from modyn_stream.selection.manifest import numeric
from modyn_stream.training.decoders import Decoder
from modyn_stream.training.exceptions import PayloadError
from modyn_stream.training.fetch import PayloadFetcher
from modyn_stream.training.loop import Chunk

_DONE = object()


class ChunkLoader:
    def __init__(
        self, fetcher: PayloadFetcher, decode: Decoder, manifest: pa.Table, *, chunk_rows: int = 4096, ahead: int = 4
    ) -> None:
        if manifest["label"].null_count:
            raise PayloadError(f"training set has {manifest['label'].null_count} samples without a label")
        self.fetcher, self.decode, self.manifest = fetcher, decode, manifest
        self.chunk_rows = chunk_rows
        self.fetch_s = self.decode_s = 0.0
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chunk-loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for start in range(0, self.manifest.num_rows, self.chunk_rows):
                if self._stop.is_set():
                    return
                rows = self.manifest.slice(start, self.chunk_rows)
                began = time.perf_counter()
                payloads = self.fetcher.fetch(
                    rows["kafka_partition"].to_pylist(), rows["kafka_offset"].to_pylist(), rows["key"].to_pylist()
                )
                fetched = time.perf_counter()
                x = self.decode(payloads)
                y, w = torch.from_numpy(numeric(rows["label"])), torch.from_numpy(numeric(rows["weight"]))
                self.fetch_s += fetched - began
                self.decode_s += time.perf_counter() - fetched
                self._put((x, y, w))
            self._put(_DONE)
        except BaseException as exc:  # surfaced in the training thread
            self._put(exc)
        finally:
            self.fetcher.release()

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
