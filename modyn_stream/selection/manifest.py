"""Training-set manifests: Arrow IPC files listing (partition, offset, key, label, weight) in stream order.

A manifest is streamed from ClickHouse (`training_sets`, or `samples` for a set stored as a
predicate) in Arrow batches and written in batches of a fixed size (LZ4-compressed), so its bytes
depend only on its rows (not on ClickHouse's block sizes) and the writer's memory does not grow
with the set. Arrow IPC rather than Parquet: it is several times cheaper to write, and the trainer
memory-maps it; pyarrow, pandas (`pyarrow.feather.read_table`) and polars (`read_ipc`) read it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from modyn_stream.artifacts import ArtifactError
from modyn_stream.metadata import MetadataStore

SCHEMA = pa.schema(
    [
        ("kafka_partition", pa.uint32()),
        ("kafka_offset", pa.uint64()),
        ("key", pa.string()),
        ("label", pa.int64()),
        ("weight", pa.float32()),
    ]
)
BATCH_ROWS = 1 << 16
READ_BLOCK_ROWS = 1 << 20  # fewer, larger blocks from ClickHouse: a third faster, memory still bounded
SUFFIX = ".arrow"


def write_manifest(store: MetadataStore, pipeline_id: str, trigger_index: int, path: Path) -> int:
    """Write the trigger's set from `training_sets` to `path`; return its number of rows.

    In (event_time, key) order, the stream's own: where each sample sits in the set (so which batch it joins,
    where a shuffle puts it) does not depend on the partition and offset it landed at, and the same stream
    trains the same model however it is partitioned. The fetcher sorts each chunk's offsets per partition."""
    sql = (
        f"SELECT {', '.join(SCHEMA.names)} FROM training_sets WHERE pipeline_id = {{pipeline:String}} "
        "AND trigger_index = {trigger:UInt32} ORDER BY event_time, key"
    )
    return write_rows(store, sql, {"pipeline": pipeline_id, "trigger": trigger_index}, path)


def write_rows(store: MetadataStore, sql: str, params: dict, path: Path) -> int:
    """Write the rows of `sql` (the manifest's columns, in order) to `path` as a manifest; return their number."""
    rows = 0
    pending: list[pa.RecordBatch] = []
    options = ipc.IpcWriteOptions(compression="lz4")
    with (
        ipc.new_file(path, SCHEMA, options=options) as writer,
        store.arrow_batches(sql, params, {"max_block_size": READ_BLOCK_ROWS}) as batches,
    ):
        for batch in batches:
            columns = [column.cast(kind) for column, kind in zip(batch.columns, SCHEMA.types, strict=True)]
            pending.append(pa.RecordBatch.from_arrays(columns, schema=SCHEMA))
            if sum(b.num_rows for b in pending) >= BATCH_ROWS:
                table = pa.Table.from_batches(pending, SCHEMA)
                full = table.num_rows - table.num_rows % BATCH_ROWS
                writer.write_table(table.slice(0, full), max_chunksize=BATCH_ROWS)
                pending = table.slice(full).to_batches()
                rows += full
        rest = pa.Table.from_batches(pending, SCHEMA)
        writer.write_table(rest, max_chunksize=BATCH_ROWS)
        rows += rest.num_rows
    return rows


def numeric(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric column without nulls as a NumPy array of its own (writable).

    Through a tensor rather than `to_numpy()`, which imports pandas on first use: 0.4 s in a run that
    never uses it."""
    return column.combine_chunks().to_tensor().to_numpy().copy()


def read_manifest(path: Path) -> pa.Table:
    """The manifest's rows (memory-mapped: pages are read as they are used)."""
    try:
        table = ipc.open_file(pa.memory_map(str(path))).read_all()
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArtifactError(f"manifest {path}: cannot read: {exc}") from None
    if not table.schema.equals(SCHEMA):
        raise ArtifactError(f"manifest {path}: unexpected columns {table.schema.names}")
    return table
