"""Looking into topics: decoded tail lines, and per-topic offsets with consumer-group lag."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, ConsumerGroupTopicPartitions, Message, TopicPartition
from confluent_kafka.admin import AdminClient

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import READER_OVERRIDES, BatchConsumer
from modyn_stream.kafka.dlq import dead_letter_headers
from modyn_stream.kafka.topics import TopicAdmin
from modyn_stream.timeutil import format_time

_TIME_FIELDS = {"event_time", "fired_at", "created_at", "updated_at", "produced_at", "at", "window_start", "window_end"}
_TIME_FIELDS |= {"boundary_event_time", "max_event_time"}


@dataclass(frozen=True)
class TailEntry:
    topic: str
    partition: int
    offset: int
    key: str | None
    event_type: str | None  # None: the bytes are not an event
    record: dict | None
    error: str | None
    size: int
    dlq: dict[str, str]

    def as_json(self) -> str:
        return json.dumps(
            {
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "key": self.key,
                "type": self.event_type,
                "record": _jsonable(self.record) if self.record is not None else None,
                "error": self.error,
                "dlq": self.dlq or None,
            }
        )

    def as_line(self) -> str:
        where = f"{self.topic}[{self.partition}]@{self.offset}"
        dlq = f" dlq: {self.dlq.get('dlq.reason', '')}" if self.dlq else ""
        if self.record is None:
            return f"{where} <not an event: {self.error}> {self.size} bytes key={self.key}{dlq}"
        fields = " ".join(f"{k}={_show(k, v)}" for k, v in self.record.items() if v not in (None, {}))
        return f"{where} {self.event_type} {fields}{dlq}"


def _show(name: str, value: object) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if name in _TIME_FIELDS and isinstance(value, int):
        return format_time(value)
    return str(value)


def _jsonable(record: dict) -> dict:
    return {k: (v.hex() if isinstance(v, bytes) else v) for k, v in record.items()}


def entry_of(msg: Message, codec: EventCodec) -> TailEntry:
    key = msg.key().decode("utf-8", "replace") if msg.key() is not None else None
    value = msg.value() or b""
    common = dict(topic=msg.topic(), partition=msg.partition(), offset=msg.offset(), key=key, size=len(value))
    dlq = dead_letter_headers(msg.headers())
    try:
        event = codec.decode(value)
    except EventDecodeError as exc:
        return TailEntry(**common, event_type=None, record=None, error=str(exc), dlq=dlq)
    return TailEntry(**common, event_type=event.name, record=event.record, error=None, dlq=dlq)


def tail(
    settings: KafkaSettings,
    topic: str,
    *,
    from_beginning: bool = False,
    follow: bool = False,
    last: int = 10,
    max_messages: int | None = None,
) -> Iterator[TailEntry]:
    """Events of `topic`: the last `last` per partition (or all, from the beginning), then new ones if following."""
    codec = EventCodec.for_settings(settings)
    partitions = [TopicPartition(topic, p) for p in TopicAdmin(settings).partitions(topic)]
    consumer = BatchConsumer(
        settings,
        f"modyn-stream-tail-{uuid.uuid4().hex[:8]}",
        isolation_level="read_committed",
        overrides=READER_OVERRIDES,
    )
    with consumer:
        marks = consumer.watermarks(partitions)
        starts = [
            TopicPartition(topic, tp.partition, OFFSET_BEGINNING if from_beginning else max(low, high - last))
            for tp, (low, high) in zip(partitions, marks, strict=True)
        ]
        consumer.assign(starts)

        def messages() -> Iterator[Message]:
            yield from consumer.read_to_end(starts)
            while follow:
                yield from consumer.poll_batch(500, 0.5)

        for shown, msg in enumerate(messages(), start=1):
            yield entry_of(msg, codec)
            if max_messages is not None and shown >= max_messages:
                return


@dataclass(frozen=True)
class TopicOverview:
    name: str
    partitions: int
    end_offsets: int  # sum over partitions
    lag_by_group: dict[str, int]


def overview(settings: KafkaSettings, prefix: str) -> list[TopicOverview]:
    """Every topic starting with `prefix`, with its end offsets and each consumer group's lag on it."""
    admin = TopicAdmin(settings)
    topics = admin.list(prefix)
    raw_admin = AdminClient(settings.client_config())
    ends: dict[tuple[str, int], int] = {}
    with BatchConsumer(settings, f"modyn-stream-topics-{uuid.uuid4().hex[:8]}") as consumer:
        for info in topics:
            tps = [TopicPartition(info.name, p) for p in range(info.partitions)]
            for tp, (_, high) in zip(tps, consumer.watermarks(tps), strict=True):
                ends[(tp.topic, tp.partition)] = high
    groups = [g.group_id for g in raw_admin.list_consumer_groups(request_timeout=10).result().valid]
    lag: dict[str, dict[str, int]] = {}
    for group in sorted(groups):
        if group.startswith(("modyn-stream-tail-", "modyn-stream-topics-")):
            continue
        futures = raw_admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=10)
        for tp in futures[group].result().topic_partitions or []:
            if (tp.topic, tp.partition) in ends and tp.offset >= 0:
                behind = ends[(tp.topic, tp.partition)] - tp.offset
                lag.setdefault(tp.topic, {})[group] = lag.get(tp.topic, {}).get(group, 0) + behind
    return [
        TopicOverview(t.name, t.partitions, sum(ends[(t.name, p)] for p in range(t.partitions)), lag.get(t.name, {}))
        for t in topics
    ]
