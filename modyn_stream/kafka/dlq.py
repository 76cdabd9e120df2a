"""Dead-letter records: the original bytes plus why and where they failed, in headers.

A service that cannot decode or validate an event sends it here and keeps going; nothing is
dropped silently, and the record can be inspected (`modyn-stream tail {ns}.dlq`) or replayed.
"""

from __future__ import annotations

from confluent_kafka import Message

from modyn_stream.kafka.producer import EventProducer, OutgoingRecord

HEADER_REASON = "dlq.reason"
HEADER_STAGE = "dlq.stage"
HEADER_TOPIC = "dlq.source.topic"
HEADER_PARTITION = "dlq.source.partition"
HEADER_OFFSET = "dlq.source.offset"

MAX_REASON_BYTES = 4096


def dead_letter_record(dlq_topic: str, msg: Message, reason: str, stage: str) -> OutgoingRecord:
    """The DLQ record for `msg`: same key and value, original headers kept, failure headers added."""
    headers = list(msg.headers() or [])
    headers += [
        (HEADER_REASON, reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]),
        (HEADER_STAGE, stage.encode()),
        (HEADER_TOPIC, (msg.topic() or "").encode()),
        (HEADER_PARTITION, str(msg.partition()).encode()),
        (HEADER_OFFSET, str(msg.offset()).encode()),
    ]
    return OutgoingRecord(dlq_topic, msg.value(), key=msg.key(), headers=headers)


class DeadLetterPublisher:
    """Publishes dead letters outside a transaction (flush before committing the source offsets)."""

    def __init__(self, producer: EventProducer, dlq_topic: str) -> None:
        self.producer = producer
        self.topic = dlq_topic
        self.published = 0

    def publish(self, msg: Message, reason: str, stage: str) -> None:
        self.producer.produce_records([dead_letter_record(self.topic, msg, reason, stage)])
        self.published += 1


def dead_letter_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    """The `dlq.*` headers of a dead-letter record, decoded, for display."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or [] if k.startswith("dlq.")}
