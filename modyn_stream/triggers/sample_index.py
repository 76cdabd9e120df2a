"""The `SampleIndex` of trigger policies, answered by ClickHouse over the `samples` table.

Every query sees exactly one consistent slice: samples of one dataset with
`kafka_offset < snapshot[kafka_partition]` (ingested before the progress records the
watermark came from) and `event_time < watermark` (None: the stream has ended, all samples).
The table's order (dataset, event_time, key) makes the n-th-after queries read in order.
"""

from __future__ import annotations

import pyarrow as pa

from modyn_stream.metadata import MetadataStore
from modyn_stream.triggers.policies import Boundary

# A snapshot is two arrays (partitions, offsets); a partition missing from it reads as offset 0.
_SLICE = (
    "dataset = {dataset:String} "
    "AND kafka_offset < {offsets:Array(UInt64)}[indexOf({partitions:Array(UInt32)}, kafka_partition)] "
    "AND ({watermark:Nullable(Int64)} IS NULL OR toUnixTimestamp64Milli(event_time) < {watermark:Nullable(Int64)})"
)
_AFTER = "(toUnixTimestamp64Milli(event_time), key) > ({after_time:Int64}, {after_key:String})"


class ClickHouseSampleIndex:
    def __init__(
        self, store: MetadataStore, dataset: str, snapshot: dict[int, int], watermark: int | None, horizon: int
    ) -> None:
        """`horizon`: event time up to which periods are over (the watermark, or at the end the latest sample)."""
        self.store = store
        self.horizon = horizon
        self._params = {"dataset": dataset, "watermark": watermark, **_arrays(snapshot, "")}

    def _boundary(self, sql: str, **params) -> Boundary | None:
        rows = self.store.query(sql, {**self._params, **params})
        return Boundary(int(rows[0][0]), rows[0][1]) if rows else None

    def nth_after(self, after: Boundary, n: int) -> Boundary | None:
        return self._boundary(
            f"SELECT toUnixTimestamp64Milli(event_time), key FROM samples WHERE {_SLICE} AND {_AFTER} "
            "ORDER BY event_time, key LIMIT 1 OFFSET {skip:UInt64}",
            after_time=after.event_time,
            after_key=after.key,
            skip=n - 1,
        )

    def last_before(self, after: Boundary, event_time: int) -> Boundary | None:
        return self._boundary(
            f"SELECT toUnixTimestamp64Milli(event_time), key FROM samples WHERE {_SLICE} AND {_AFTER} "
            "AND toUnixTimestamp64Milli(event_time) < {before:Int64} ORDER BY event_time DESC, key DESC LIMIT 1",
            after_time=after.event_time,
            after_key=after.key,
            before=event_time,
        )

    def complete_before(self, event_time: int) -> bool:
        return event_time <= self.horizon

    def count_between(self, after: Boundary, upto: Boundary) -> int:
        rows = self.store.query(
            f"SELECT count() FROM samples WHERE {_SLICE} AND {_AFTER} "
            "AND (toUnixTimestamp64Milli(event_time), key) <= ({upto_time:Int64}, {upto_key:String})",
            {**self._params, "after_time": after.event_time, "after_key": after.key,
             "upto_time": upto.event_time, "upto_key": upto.key},
        )  # fmt: skip
        return int(rows[0][0])

    def window(
        self,
        upto: Boundary,
        *,
        after: Boundary | None = None,
        last: int | None = None,
        since: int | None = None,
        labelled: bool = False,
    ) -> pa.Table:
        """The samples at or before `upto` (and after `after`), only the `last` ones or those with an event time at
        or past `since` (or with a label), in (event_time, key) order: kafka_partition, kafka_offset, key, label (0
        where none), t."""
        params = {"upto_time": upto.event_time, "upto_key": upto.key, "since": since, "limit": last}
        where = f"{_SLICE} AND (toUnixTimestamp64Milli(event_time), key) <= ({{upto_time:Int64}}, {{upto_key:String}})"
        if after is not None:
            where += f" AND {_AFTER}"
            params |= {"after_time": after.event_time, "after_key": after.key}
        if since is not None:
            where += " AND toUnixTimestamp64Milli(event_time) >= {since:Int64}"
        if labelled:
            where += " AND label IS NOT NULL"
        sql = (
            "SELECT kafka_partition, kafka_offset, key, ifNull(label, 0) AS label, toUnixTimestamp64Milli(event_time) "
            f"AS t FROM samples WHERE {where}"
        )
        if last is not None:  # the last ones: the first of the reverse order, then put back in order
            sql = f"SELECT * FROM ({sql} ORDER BY event_time DESC, key DESC LIMIT {{limit:UInt64}})"
        with self.store.arrow_batches(f"{sql} ORDER BY t, key", {**self._params, **params}) as stream:
            batches = [batch for batch in stream if batch.num_rows]
        if not batches:
            return pa.table({"kafka_partition": [], "kafka_offset": [], "key": [], "label": [], "t": []})
        return pa.Table.from_batches(batches)

    def late_count(self, last: Boundary, previous_snapshot: dict[int, int]) -> int:
        """Samples sorting at or before `last` that the previous trigger could not see (ingested after it)."""
        rows = self.store.query(
            f"SELECT count() FROM samples WHERE {_SLICE} AND NOT {_AFTER} "
            "AND kafka_offset >= "
            "{prev_offsets:Array(UInt64)}[indexOf({prev_partitions:Array(UInt32)}, kafka_partition)]",
            {
                **self._params,
                "after_time": last.event_time,
                "after_key": last.key,
                **_arrays(previous_snapshot, "prev_"),
            },
        )
        return int(rows[0][0])


def _arrays(snapshot: dict[int, int], prefix: str) -> dict[str, list[int]]:
    partitions = sorted(snapshot)
    return {f"{prefix}partitions": partitions, f"{prefix}offsets": [snapshot[p] for p in partitions]}
