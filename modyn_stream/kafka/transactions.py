"""Exactly-once consume-transform-produce with Kafka transactions.

Each batch is one transaction: the records a transform returns and the consumer offsets
of the batch are committed together, or neither is. The error contract follows
confluent-kafka's (see its `examples/eos_transactions.py`): an abortable error aborts the
transaction and rewinds the consumer to its committed offsets so the batch is processed again;
a retriable commit error is retried; a fatal one (e.g. fenced by a newer instance with the same
transactional id) is raised. Every call that waits on the broker has a timeout (`CALL_TIMEOUT_S`):
a broker that is away makes it raise a transient TransactionError instead of hanging forever, and the
service restarts from its committed state once the broker is back (see `orchestration/restart.py`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from confluent_kafka import KafkaException, Message

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import BatchConsumer, ShutdownFlag, first_offsets, next_offsets
from modyn_stream.kafka.exceptions import TransactionError
from modyn_stream.kafka.producer import EventProducer, OutgoingRecord

log = logging.getLogger(__name__)

Transform = Callable[[Sequence[Message]], Iterable[OutgoingRecord]]
CALL_TIMEOUT_S = 30.0  # longest one transaction call waits for the broker


def _failed(what: str, exc: KafkaException) -> TransactionError:
    error = exc.args[0]
    return TransactionError(f"{what}: {error.str()}", transient=not error.fatal())


class TransactionalProcessor:
    """Runs `transform` over batches of input messages, committing output and offsets atomically."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group_id: str,
        transactional_id: str,
        input_topics: Sequence[str],
        transform: Transform,
        max_batch: int = 500,
        poll_timeout_s: float = 1.0,
        commit_retries: int = 5,
        consumer_overrides: dict | None = None,
        ready: Callable[[Sequence[Message]], bool] | None = None,
        recheck_s: float = 0.25,
    ) -> None:
        self.transform = transform
        # Whether a batch can be processed now (e.g. its inputs are complete); one that cannot is left
        # uncommitted, read again and asked again after `recheck_s`.
        self.ready = ready
        self.recheck_s = recheck_s
        self._held_until = 0.0
        self.max_batch = max_batch
        self.poll_timeout_s = poll_timeout_s
        self.commit_retries = commit_retries
        self.transactional_id = transactional_id
        self.consumer = BatchConsumer(
            settings, group_id, isolation_level="read_committed", overrides=consumer_overrides
        )
        self.producer = EventProducer(settings, transactional_id=transactional_id)
        self._initialised = False
        self._input_topics = list(input_topics)

    def start(self, timeout_s: float = 30.0) -> None:
        """Register the transactional id (fencing older instances) and subscribe."""
        if not self._initialised:
            init_transactions(self.producer, timeout_s)
            self.consumer.subscribe(self._input_topics)
            self._initialised = True

    def process_batch(self, timeout_s: float | None = None) -> int:
        """Poll one batch (waiting up to `timeout_s`, default the processor's) and process it in one
        transaction; return how many input messages were committed."""
        self.start()
        if time.monotonic() < self._held_until:
            return 0
        messages = self.consumer.poll_batch(self.max_batch, self.poll_timeout_s if timeout_s is None else timeout_s)
        self._held_until = 0.0
        if not messages:
            return 0
        if self.ready is not None and not self.ready(messages):
            for tp in first_offsets(messages):
                self.consumer.raw.seek(tp)
            self._held_until = time.monotonic() + self.recheck_s
            return 0
        producer = self.producer.raw
        self._call("begin_transaction", producer.begin_transaction)
        try:
            self.producer.produce_records(self.transform(messages))
            producer.send_offsets_to_transaction(
                next_offsets(messages), self.consumer.raw.consumer_group_metadata(), CALL_TIMEOUT_S
            )
            self._commit()
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal() or not error.txn_requires_abort():
                raise _failed(self.transactional_id, exc) from None
            log.warning("%s: aborting transaction: %s", self.transactional_id, error.str())
            self._abort_and_rewind()
            return 0
        except BaseException:
            self._abort_and_rewind()
            raise
        return len(messages)

    @property
    def holding(self) -> bool:
        """Whether the last batch read was not ready and waits to be asked about again."""
        return self._held_until > 0

    def _commit(self) -> None:
        for attempt in range(self.commit_retries + 1):
            try:
                self.producer.raw.commit_transaction(CALL_TIMEOUT_S)
                return
            except KafkaException as exc:
                if exc.args[0].retriable() and attempt < self.commit_retries:
                    continue
                raise

    def _abort_and_rewind(self) -> None:
        self._call("abort_transaction", lambda: self.producer.raw.abort_transaction(CALL_TIMEOUT_S))
        self.consumer.rewind_to_committed()

    def _call(self, what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except KafkaException as exc:
            raise _failed(f"{self.transactional_id}: {what} failed", exc) from None

    def run(self, shutdown: ShutdownFlag) -> int:
        """Process batches until `shutdown` is set; return the number of input messages committed."""
        total = 0
        while not shutdown.is_set:
            total += self.process_batch()
        return total

    def close(self, abandon: bool = False) -> None:
        if abandon:
            self.producer.abandon()
        self.consumer.close()

    def __enter__(self) -> TransactionalProcessor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def produce_in_transaction(producer: EventProducer, records: Iterable[OutgoingRecord], what: str) -> None:
    """Produce `records` as one transaction of an initialised transactional `producer`: read_committed
    consumers see all of them or none."""
    raw = producer.raw
    try:
        raw.begin_transaction()
        producer.produce_records(records)
        raw.commit_transaction(CALL_TIMEOUT_S)
    except KafkaException as exc:
        if exc.args[0].txn_requires_abort():
            try:
                raw.abort_transaction(CALL_TIMEOUT_S)
            except KafkaException as abort:
                raise _failed(f"{what} (aborting)", abort) from None
        raise _failed(what, exc) from None


def transactional_producer(settings: KafkaSettings, transactional_id: str, timeout_s: float = 30.0) -> EventProducer:
    """A producer with `transactional_id` registered, which fences any older producer using that id."""
    return init_transactions(EventProducer(settings, transactional_id=transactional_id), timeout_s)


def init_transactions(producer: EventProducer, timeout_s: float = 30.0) -> EventProducer:
    """Register the producer's transactional id. A new producer gets its producer id up to 0.5 s after it
    was created (librdkafka's timer), so create it early and register it when it is needed."""
    try:
        producer.raw.init_transactions(timeout_s)
    except KafkaException as exc:
        raise _failed(f"{producer.transactional_id}: init_transactions failed", exc) from None
    return producer
