"""Training-set manifests: Parquet files listing (partition, offset, key, label, weight) in offset order.

A manifest is streamed from ClickHouse `training_sets` in Arrow batches and written in row
groups of a fixed size, so its bytes depend only on its rows (not on ClickHouse's block sizes)
and the writer's memory does not grow with the set. pyarrow, pandas and polars read it directly.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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
ROW_GROUP_ROWS = 1 << 16


def write_manifest(store: MetadataStore, pipeline_id: str, trigger_index: int, path: Path) -> int:
    """Write the trigger's set from `training_sets` to `path`; return its number of rows."""
    sql = (
        f"SELECT {', '.join(SCHEMA.names)} FROM training_sets WHERE pipeline_id = {{pipeline:String}} "
        "AND trigger_index = {trigger:UInt32} ORDER BY kafka_partition, kafka_offset"
    )
    rows = 0
    pending: list[pa.RecordBatch] = []
    with (
        pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer,
        store.arrow_batches(sql, {"pipeline": pipeline_id, "trigger": trigger_index}) as batches,
    ):
        for batch in batches:
            pending.append(
                pa.RecordBatch.from_arrays(
                    [c.cast(t) for c, t in zip(batch.columns, SCHEMA.types, strict=True)], schema=SCHEMA
                )
            )
            buffered = sum(b.num_rows for b in pending)
            while buffered >= ROW_GROUP_ROWS:
                table = pa.Table.from_batches(pending, SCHEMA)
                writer.write_table(table.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                pending = table.slice(ROW_GROUP_ROWS).to_batches()
                buffered -= ROW_GROUP_ROWS
                rows += ROW_GROUP_ROWS
        rest = pa.Table.from_batches(pending, SCHEMA)
        if rest.num_rows or rows == 0:
            writer.write_table(rest, row_group_size=ROW_GROUP_ROWS)
            rows += rest.num_rows
    return rows


def read_manifest(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise ArtifactError(f"manifest {path}: cannot read: {exc}") from None
    if not table.schema.equals(SCHEMA):
        raise ArtifactError(f"manifest {path}: unexpected columns {table.schema.names}")
    return table
