"""An idempotent producer that surfaces delivery errors instead of dropping them.

librdkafka reports delivery failures asynchronously; this wrapper collects them and raises
:class:`DeliveryError` from :meth:`EventProducer.flush`, so a caller that flushed without an
error knows every message it produced is on the broker.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.exceptions import DeliveryError

Headers = list[tuple[str, bytes]]

PRODUCER_MAX_MESSAGE_BYTES = 16 << 20  # what one of our records may be; topics' max.message.bytes still apply
PRODUCER_DEFAULTS: dict[str, Any] = {
    "message.max.bytes": PRODUCER_MAX_MESSAGE_BYTES,
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 500_000,
}
SERVE_EVERY = 1000  # produce() serves delivery reports once per this many messages (flush serves the rest)


@dataclass(frozen=True)
class OutgoingRecord:
    """A record to produce; transforms return these so the caller decides how (and in which transaction)."""

    topic: str
    value: bytes | None
    key: bytes | str | None = None
    headers: Headers | None = None
    partition: int | None = None


class EventProducer:
    """Thin typed wrapper over confluent-kafka's Producer."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        transactional_id: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        conf = {**settings.client_config(), **PRODUCER_DEFAULTS, **(overrides or {})}
        if transactional_id:
            conf["transactional.id"] = transactional_id
        self.bootstrap = settings.bootstrap_servers
        self.transactional_id = transactional_id
        self._producer = Producer(conf)
        self._lock = threading.Lock()
        self._failures = 0
        self._first_failure: str | None = None
        self._queued = 0
        self.delivered = 0

    @property
    def raw(self) -> Producer:
        """The underlying confluent-kafka Producer, for transaction calls."""
        return self._producer

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self.delivered += 1
                return
            self._failures += 1
            if self._first_failure is None:
                self._first_failure = f"{msg.topic()}[{msg.partition()}]: {err.str()}"

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Queue one message; blocks (serving callbacks) while the local queue is full."""
        kwargs: dict[str, Any] = {"key": key, "headers": headers, "on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms is not None and timestamp_ms > 0:
            kwargs["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, value, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.05)
            except KafkaException as exc:
                raise DeliveryError(f"producing to {topic}: {exc.args[0].str()}") from None
        self._queued += 1
        if self._queued % SERVE_EVERY == 0:
            self._producer.poll(0)  # serve delivery reports now and then: each call costs as much as a produce

    def produce_records(self, records: Iterable[OutgoingRecord]) -> int:
        count = 0
        for record in records:
            self.produce(record.topic, record.value, record.key, record.headers, record.partition)
            count += 1
        return count

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for all queued messages; raise DeliveryError if any failed or did not finish in time."""
        remaining = self._producer.flush(timeout_s)
        with self._lock:
            failures, first = self._failures, self._first_failure
            self._failures, self._first_failure = 0, None
        if failures:
            raise DeliveryError(f"{failures} message(s) failed delivery to {self.bootstrap}; first: {first}")
        if remaining:
            raise DeliveryError(
                f"{remaining} message(s) still undelivered to {self.bootstrap} after {timeout_s:g} s "
                "(is the broker reachable?)"
            )

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)

    def abandon(self) -> None:
        """Drop every record not yet acknowledged, at once (for a failed service whose work is redone)."""
        self._producer.purge()
        self._producer.flush(0)
        with self._lock:
            self._failures, self._first_failure = 0, None

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._producer.flush(1.0)
