"""Dead-letter records: the original bytes plus why and where they failed, in headers.

A service that cannot decode or validate an event sends it here and keeps going; nothing is
dropped silently, and the record can be inspected (`modyn-stream tail {ns}.dlq`) or replayed.

A dead letter always fits the DLQ: an original too large for the DLQ's `max.message.bytes` (with the
headers added) is truncated, and its size and sha256 go into headers beside its source coordinates,
which still locate the whole record on its topic. Otherwise one oversized event would fail the
dead letter, and the stage that read it would re-read and fail on it forever.

>>> big = Message(topic="ns.samples.d", partition=0, offset=7, value=b"x" * 10_000)
>>> record = dead_letter_record("ns.dlq", big, "not an event", "ingest", limit_bytes=4096)
>>> len(record.value) < 4096, dict(record.headers)["dlq.original.size"], dict(record.headers)["dlq.source.offset"]
(True, b'10000', b'7')
"""

from __future__ import annotations

import hashlib

from confluent_kafka import Message

from modyn_stream.kafka.producer import PRODUCER_MAX_MESSAGE_BYTES, EventProducer, OutgoingRecord
from modyn_stream.kafka.topics import TopicAdmin

HEADER_REASON = "dlq.reason"
HEADER_STAGE = "dlq.stage"
HEADER_TOPIC = "dlq.source.topic"
HEADER_PARTITION = "dlq.source.partition"
HEADER_OFFSET = "dlq.source.offset"
HEADER_SIZE = "dlq.original.size"
HEADER_SHA256 = "dlq.original.sha256"
HEADER_HEADERS_DROPPED = "dlq.original.headers_dropped"

MAX_REASON_BYTES = 4096
# Record and batch framing, plus lz4's growth on incompressible bytes (under 0.5 %): kept free of the limit.
_FRAMING_BYTES = 1024


def dead_letter_record(dlq_topic: str, msg: Message, reason: str, stage: str, limit_bytes: int) -> OutgoingRecord:
    """The DLQ record for `msg`, no larger than `limit_bytes` (the DLQ's max.message.bytes): same key and value
    (truncated to fit), original headers kept (dropped if they alone are too large), failure headers added."""
    added = [
        (HEADER_REASON, reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]),
        (HEADER_STAGE, stage.encode()),
        (HEADER_TOPIC, (msg.topic() or "").encode()),
        (HEADER_PARTITION, str(msg.partition()).encode()),
        (HEADER_OFFSET, str(msg.offset()).encode()),
    ]
    budget = limit_bytes - _FRAMING_BYTES - limit_bytes // 200
    original = list(msg.headers() or [])
    if _size(original) > budget // 2:
        added.append((HEADER_HEADERS_DROPPED, str(len(original)).encode()))
        original = []
    key, value = msg.key(), msg.value()
    key = key[: budget // 4] if key else key
    room = budget - _size(original + added) - len(key or b"") - 256  # 256: the size and checksum headers
    if value is not None and len(value) > room:
        added += [(HEADER_SIZE, str(len(value)).encode()), (HEADER_SHA256, hashlib.sha256(value).hexdigest().encode())]
        value = value[: max(room, 0)]
    return OutgoingRecord(dlq_topic, value, key=key, headers=original + added)


def dlq_limit_bytes(admin: TopicAdmin, dlq_topic: str) -> int:
    """The largest record the DLQ takes: its max.message.bytes, and no more than our producers send."""
    return min(int(admin.config(dlq_topic)["max.message.bytes"]), PRODUCER_MAX_MESSAGE_BYTES)


def _size(headers: list[tuple[str, bytes]]) -> int:
    return sum(len(k) + len(v or b"") + 8 for k, v in headers)


class DeadLetterPublisher:
    """Publishes dead letters outside a transaction (flush before committing the source offsets)."""

    def __init__(self, producer: EventProducer, dlq_topic: str, limit_bytes: int) -> None:
        self.producer = producer
        self.topic = dlq_topic
        self.limit_bytes = limit_bytes
        self.published = 0

    def publish(self, msg: Message, reason: str, stage: str) -> None:
        self.producer.produce_records([dead_letter_record(self.topic, msg, reason, stage, self.limit_bytes)])
        self.published += 1


def dead_letter_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """The `dlq.*` headers of a dead-letter record, decoded, for display."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or [] if k.startswith("dlq.")}
