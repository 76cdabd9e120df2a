"""The global event-time watermark, derived from per-partition ingest progress (DESIGN.md "Contracts").

The watermark is the minimum, over partitions, of the largest event_time ingested. A partition
that signalled end-of-stream, or has been idle past a timeout, stops holding it back. A partition
with nothing ingested yet holds it back entirely (None) until it is idle or ended.

>>> p = [PartitionProgress("t", 0, 10, 500, False, 1000), PartitionProgress("t", 1, 3, 200, False, 1000)]
>>> global_watermark(p, partitions={("t", 0), ("t", 1)}, now_ms=1500, idle_timeout_ms=60_000)
200
>>> global_watermark(p, partitions={("t", 0), ("t", 1)}, now_ms=90_000, idle_timeout_ms=60_000)
500
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

END_OF_TIME = 2**62


@dataclass(frozen=True)
class PartitionProgress:
    topic: str
    partition: int
    next_offset: int
    max_event_time: int | None
    end_of_stream: bool
    updated_at: int

    @classmethod
    def from_event(cls, record: dict) -> PartitionProgress:
        return cls(
            record["topic"],
            record["partition"],
            record["next_offset"],
            record["max_event_time"],
            record["end_of_stream"],
            record["updated_at"],
        )


def global_watermark(
    progress: Iterable[PartitionProgress],
    partitions: set[tuple[str, int]],
    now_ms: int,
    idle_timeout_ms: int | None,
) -> int | None:
    """The event time up to which every partition of `partitions` is ingested; None if not known yet.

    END_OF_TIME when every partition has ended (the whole stream is ingested)."""
    latest = {(p.topic, p.partition): p for p in progress}
    constraints, seen = [], []
    for key in partitions:
        p = latest.get(key)
        if p is not None and p.max_event_time is not None:
            seen.append(p.max_event_time)
        if p is not None and (
            p.end_of_stream or (idle_timeout_ms is not None and now_ms - p.updated_at >= idle_timeout_ms)
        ):
            continue  # ended or idle: does not hold the watermark back
        if p is None or p.max_event_time is None:
            return None
        constraints.append(p.max_event_time)
    if constraints:
        return min(constraints)
    if all(key in latest and latest[key].end_of_stream for key in partitions):
        return END_OF_TIME
    return max(seen, default=None)  # only idle (and ended) partitions: all seen so far is complete
