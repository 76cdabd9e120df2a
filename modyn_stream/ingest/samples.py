"""Turning decoded SampleEvents into `samples` rows, and the checks that send an event to the DLQ."""

from __future__ import annotations

from dataclasses import dataclass, field

from modyn_stream.metadata.migrations import MAX_EVENT_TIME, MAX_KEY_LENGTH, MIN_EVENT_TIME


def invalid_reason(record: dict, dataset: str) -> str | None:
    """Why a decoded SampleEvent cannot be ingested from the topic of `dataset`, or None if it can."""
    if record["dataset"] != dataset:
        return f"dataset {record['dataset']!r} does not match the topic's dataset {dataset!r}"
    key = record["key"]
    if not key or len(key) > MAX_KEY_LENGTH:
        return f"key must be 1-{MAX_KEY_LENGTH} characters, got {len(key)}"
    if not MIN_EVENT_TIME <= record["event_time"] < MAX_EVENT_TIME:
        return f"event_time {record['event_time']} is outside 1900-01-01..2300-01-01"
    if record["payload"] is None and not record["payload_uri"]:
        return "neither payload nor payload_uri is set"
    return None


@dataclass
class SampleRows:
    """Column-oriented rows for one insert into `samples` (plain lists: the fastest insert path)."""

    dataset: list[str] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    event_time: list[int] = field(default_factory=list)
    label: list[int | None] = field(default_factory=list)
    topic: list[str] = field(default_factory=list)
    kafka_partition: list[int] = field(default_factory=list)
    kafka_offset: list[int] = field(default_factory=list)
    payload_size: list[int] = field(default_factory=list)

    def append(self, record: dict, topic: str, partition: int, offset: int) -> None:
        self.dataset.append(record["dataset"])
        self.key.append(record["key"])
        self.event_time.append(record["event_time"])
        self.label.append(record["label"])
        self.topic.append(topic)
        self.kafka_partition.append(partition)
        self.kafka_offset.append(offset)
        payload = record["payload"]
        self.payload_size.append(len(payload) if payload is not None else 0)

    def __len__(self) -> int:
        return len(self.key)

    def columns(self, ingested_at: int) -> dict[str, list]:
        return {**self.__dict__, "ingested_at": [ingested_at] * len(self.key)}
