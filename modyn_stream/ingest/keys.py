"""Sample keys are unique within a dataset: the first sample ingested with a key is kept.

A later SampleEvent with a key already ingested (a producer that sent a sample twice, a replay run
again into the same topic) goes to the DLQ, naming the sample that holds the key; so a training set
never holds a sample twice. ClickHouse `sample_keys` (filled by a materialized view of `samples`,
in the same insert) says which keys a dataset has, ordered by key for point lookups. Within one
batch the sample with the smallest (partition, offset) is the first. Two ingest instances that read
one key in two partitions at the same moment may both keep it: a producer of ours sends a key to one
partition (`replay.partition_of`).

>>> from modyn_stream.events import EventCodec
>>> event = EventCodec().encode("SampleEvent", {"dataset": "d", "key": "k-7", "event_time": 1, "payload": b""})
>>> body_key(event[10:]), body_key(b"\\x02")
('k-7', None)
"""

from __future__ import annotations

from collections.abc import Iterable

from modyn_stream.metadata import MetadataStore

Coordinates = tuple[str, int, int]  # topic, partition, offset


def _varint(data: bytes, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), at
        shift += 7


def body_key(body: bytes) -> str | None:
    """The key of an undecoded SampleEvent body (Avro: `dataset`, then `key`, each length-prefixed)."""
    try:
        length, at = _varint(body, 0)
        length, at = _varint(body, at + length)
        if length < 0 or at + length > len(body):
            return None
        return body[at : at + length].decode("utf-8")
    except (IndexError, UnicodeDecodeError):
        return None


def duplicates(store: MetadataStore, samples: Iterable[tuple[str, str, Coordinates]]) -> dict[Coordinates, str]:
    """For each (dataset, key, coordinates) whose key another sample holds, why it is a dead letter."""
    first: dict[tuple[str, str], Coordinates] = {}
    later: list[tuple[str, str, Coordinates]] = []
    for dataset, key, where in sorted(samples, key=lambda s: (s[2][1], s[2][2], s[2][0])):
        if (dataset, key) in first:
            later.append((dataset, key, where))
        else:
            first[(dataset, key)] = where
    by_dataset: dict[str, list[str]] = {}
    for dataset, key in first:
        by_dataset.setdefault(dataset, []).append(key)
    held: dict[tuple[str, str], Coordinates] = {}
    for dataset, keys in by_dataset.items():
        rows = store.query(
            "SELECT key, any(topic), any(kafka_partition), any(kafka_offset) FROM sample_keys "
            "WHERE dataset = {d:String} AND key IN {keys:Array(String)} GROUP BY key",
            {"d": dataset, "keys": keys},
        )
        held |= {(dataset, key): (topic, partition, offset) for key, topic, partition, offset in rows}
    out = {}
    for (dataset, key), where in first.items():
        if (dataset, key) in held and held[(dataset, key)] != where:
            out[where] = _reason(dataset, key, held[(dataset, key)])
    for dataset, key, where in later:
        out[where] = _reason(dataset, key, held.get((dataset, key), first[(dataset, key)]))
    return out


def _reason(dataset: str, key: str, holder: Coordinates) -> str:
    topic, partition, offset = holder
    return f"duplicate key {key!r} in dataset {dataset!r}: the sample at {topic}[{partition}]@{offset} holds it"
