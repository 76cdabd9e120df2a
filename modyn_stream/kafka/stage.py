"""A stage that turns each input event into its output records, exactly once (or a dead letter).

The selector, the trainer and the evaluator are such stages: `TransactionalProcessor` commits the output and
the input offset together, one event per transaction; the subclass's `handle` says what an event
becomes, and `dead_letter` sends what it cannot use to `{ns}.dlq` in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from confluent_kafka import Message

from modyn_stream.events import DecodedEvent, EventCodec, EventDecodeError
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.dlq import dead_letter_record, dlq_limit_bytes
from modyn_stream.kafka.producer import OutgoingRecord
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, project_topic_specs
from modyn_stream.kafka.transactions import TransactionalProcessor

log = logging.getLogger(__name__)


class TransactionalStage:
    stage = "stage"  # names the consumer group, the transactional id and dead letters
    consumes = "TriggerEvent"  # the event type expected on the input topic
    max_handle_s: float | None = None  # longest one event may take, if over the consumer's default (5 min)

    def __init__(self, settings: KafkaSettings, input_topic: str, *, instance: str = "0") -> None:
        self.settings = settings
        self.names = TopicNames(settings.namespace)
        self.codec = EventCodec.for_settings(settings)
        admin = TopicAdmin(settings)
        admin.ensure(project_topic_specs(self.names))
        self.dlq_limit_bytes = dlq_limit_bytes(admin, self.names.dlq)
        self.processor = TransactionalProcessor(
            settings,
            group_id=f"{settings.namespace}.{self.stage}",
            transactional_id=f"{settings.namespace}.{self.stage}.{instance}",
            input_topics=[input_topic],
            transform=self._transform,
            max_batch=1,  # one transaction per event: a slow one delays no committed one
            consumer_overrides={"max.poll.interval.ms": int(self.max_handle_s * 1000)} if self.max_handle_s else None,
            ready=self._ready,
        )
        self.done = 0  # committed input events that gave outputs
        self.dead_letters = 0  # committed input events that became dead letters
        self._outputs: list[list[OutgoingRecord]] = []

    def start(self) -> None:
        """Register the transactional id and subscribe now (the first `step` does it otherwise)."""
        self.processor.start()

    def step(self, timeout_s: float | None = None) -> int:
        """Process the next input event, waiting up to `timeout_s` for one; return how many were committed
        (0 or 1). A loop stepping several stages in turn passes a short timeout so none waits on another."""
        if committed := self.processor.process_batch(timeout_s):
            # An event is a dead letter when that is all it gave; one beside results only notes a part left out.
            dead = sum(all(r.topic == self.names.dlq for r in records) for records in self._outputs)
            self.dead_letters += dead
            self.done += len(self._outputs) - dead
        return committed

    def _ready(self, messages: Sequence[Message]) -> bool:
        for msg in messages:
            try:
                decoded = self.codec.decode(msg.value())
            except EventDecodeError:
                continue  # a dead letter, which needs nothing else
            if decoded.name == self.consumes and not self.ready(msg, decoded):
                return False
        return True

    def ready(self, msg: Message, event: DecodedEvent) -> bool:
        """Whether `event` can be handled now; one that cannot stays uncommitted and is asked about again
        shortly (a result that depends on more input waits for it, rather than depending on timing)."""
        return True

    def _transform(self, messages: Sequence[Message]) -> list[OutgoingRecord]:
        self._outputs = []
        for msg in messages:
            records = self._handle_message(msg)
            self._outputs.append(records if isinstance(records, list) else [records])
        return [record for records in self._outputs for record in records]

    def _handle_message(self, msg: Message) -> OutgoingRecord | list[OutgoingRecord]:
        try:
            decoded = self.codec.decode(msg.value())
        except EventDecodeError as exc:
            return self.dead_letter(msg, str(exc))
        if decoded.name != self.consumes:
            return self.dead_letter(msg, f"expected a {self.consumes}, got a {decoded.name}")
        return self.handle(msg, decoded)

    def handle(self, msg: Message, event: DecodedEvent) -> OutgoingRecord | list[OutgoingRecord]:
        raise NotImplementedError

    def dead_letter(self, msg: Message, reason: str) -> OutgoingRecord:
        log.warning(
            "%s: dead letter from %s[%d]@%d: %s", self.stage, msg.topic(), msg.partition(), msg.offset(), reason
        )
        return dead_letter_record(self.names.dlq, msg, reason, self.stage, self.dlq_limit_bytes)

    def close(self, abandon: bool = False) -> None:
        """`abandon`: a failed stage, closed without waiting on the broker."""
        self.processor.close(abandon)

    def __enter__(self):
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
