"""A consumer with manual commits, batch polling, rebalance callbacks and clean shutdown.

Offsets are never committed automatically: a service commits only what it has durably
processed (after a ClickHouse insert, or inside a transaction).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.exceptions import KafkaLayerError
from modyn_stream.kafka.topics import TopicAdmin

log = logging.getLogger(__name__)

RebalanceCallback = Callable[[Consumer, list[TopicPartition]], None]

CONSUMER_DEFAULTS: dict[str, Any] = {
    # A member that died with the broker away (it could not leave the group) is dropped after 10 s, not 45:
    # the instance rebuilt in its place gets its partitions that much sooner.
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 3_000,
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
    "fetch.min.bytes": 1,
}

# For consumers that read up to end offsets (`read_to_end`): the broker answers a connection's requests
# in order, so the ListOffsets asking for the end would wait behind a long-polling fetch (500 ms by
# default) on every call.
READER_OVERRIDES: dict[str, Any] = {"fetch.wait.max.ms": 10}


# Answers a partition gives while its new leader is still taking over; they pass on their own.
_LEADER_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
}


class ShutdownFlag:
    """Set by SIGINT/SIGTERM (or by hand); loops check it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    @contextmanager
    def on_signals(self) -> Iterator[ShutdownFlag]:
        """Route SIGINT/SIGTERM to this flag while inside the block (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            signal.signal(sig, lambda *_: self.set())
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class BatchConsumer:
    """Thin typed wrapper over confluent-kafka's Consumer."""

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        *,
        isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed",
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        conf = {
            **settings.client_config(),
            **CONSUMER_DEFAULTS,
            "group.id": group_id,
            "isolation.level": isolation_level,
            "auto.offset.reset": auto_offset_reset,
            **(overrides or {}),
        }

        self.group_id = group_id
        self._reset_to = OFFSET_BEGINNING if auto_offset_reset == "earliest" else OFFSET_END
        self._consumer = Consumer(conf)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._closed = False

    @property
    def raw(self) -> Consumer:
        return self._consumer

    def subscribe(self, topics: Sequence[str]) -> None:
        kwargs: dict[str, Any] = {}
        if self._on_assign:
            kwargs["on_assign"] = self._on_assign
        if self._on_revoke:
            kwargs["on_revoke"] = self._on_revoke
            kwargs["on_lost"] = self._on_revoke
        self._consumer.subscribe(list(topics), **kwargs)

    def assign(self, partitions: list[TopicPartition]) -> None:
        self._consumer.assign(partitions)

    def unassign(self) -> None:
        self._consumer.unassign()

    def poll_batch(self, max_messages: int = 1000, timeout_s: float = 1.0) -> list[Message]:
        """Up to `max_messages` messages; broker-side errors are logged, fatal ones raised."""
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout_s)
        good = []
        for msg in messages:
            error = msg.error()
            if error is None:
                good.append(msg)
            elif error.code() == KafkaError._PARTITION_EOF:
                continue
            elif error.fatal():
                raise KafkaLayerError(f"consumer {self.group_id}: fatal error: {error.str()}")
            else:
                log.warning("consumer %s: %s", self.group_id, error.str())
        return good

    def commit(self, messages: Sequence[Message]) -> list[TopicPartition]:
        """Synchronously commit past the last of `messages` in each partition; return what was committed."""
        offsets = next_offsets(messages)
        if offsets:
            self.commit_offsets(offsets)
        return offsets

    def commit_offsets(self, offsets: list[TopicPartition]) -> None:
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            error = exc.args[0]
            raise KafkaLayerError(
                f"consumer {self.group_id}: commit failed: {error.str()}", transient=not error.fatal()
            ) from None

    def committed(self, partitions: list[TopicPartition], timeout_s: float = 10.0) -> list[TopicPartition]:
        return self._consumer.committed(partitions, timeout=timeout_s)

    def watermarks(self, partitions: list[TopicPartition], timeout_s: float = 15.0) -> list[tuple[int, int]]:
        """(low, high) offsets of each partition, retrying retriable errors (a new topic's leader may lag)."""
        deadline = time.monotonic() + timeout_s
        result = []
        for tp in partitions:
            while True:
                try:
                    result.append(self._consumer.get_watermark_offsets(tp, timeout=timeout_s))
                    break
                except KafkaException as exc:
                    error = exc.args[0]
                    transient = error.retriable() or error.code() in _LEADER_NOT_READY
                    if not transient or time.monotonic() > deadline:
                        raise KafkaLayerError(
                            f"offsets of {tp.topic}[{tp.partition}]: {error.str()}", transient=transient
                        ) from None
                    time.sleep(0.1)
        return result

    def read_to_end(self, partitions: list[TopicPartition], timeout_s: float = 60.0) -> Iterator[Message]:
        """Messages of the assigned `partitions` from their given offsets (or the start, if negative) up to the
        end offsets they have now.

        Progress counts positions as well as message offsets: transaction markers take offsets but are
        never delivered, and before the first fetch a position is unknown. Raises if no partition moves
        for `timeout_s` seconds (a long read that keeps moving never times out)."""
        bare = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        marks = self.watermarks(bare)
        ends = {(tp.topic, tp.partition): high for tp, (_, high) in zip(bare, marks, strict=True)}
        reached = {
            (tp.topic, tp.partition): tp.offset if tp.offset >= 0 else low
            for tp, (low, _) in zip(partitions, marks, strict=True)
        }
        progress, deadline = -1, 0.0
        while True:
            for tp in self._consumer.position(bare):
                reached[(tp.topic, tp.partition)] = max(reached[(tp.topic, tp.partition)], tp.offset)
            if all(reached[key] >= end for key, end in ends.items()):
                return
            if sum(reached.values()) != progress:
                progress, deadline = sum(reached.values()), time.monotonic() + timeout_s
            elif time.monotonic() > deadline:
                behind = {f"{t}[{p}]": end - reached[(t, p)] for (t, p), end in ends.items() if reached[(t, p)] < end}
                raise KafkaLayerError(
                    f"consumer {self.group_id}: no progress for {timeout_s:g} s short of the end offsets: {behind}",
                    transient=True,
                )
            # consume() returns early only once it has all it asked for, so ask for no more than is left
            # (transaction markers take offsets too, hence the short timeout).
            left = sum(end - reached[key] for key, end in ends.items() if reached[key] < end)
            for msg in self.poll_batch(min(1000, left), 0.02):
                key = (msg.topic(), msg.partition())
                reached[key] = max(reached[key], msg.offset() + 1)
                yield msg

    def rewind_to_committed(self) -> None:
        """Seek every assigned partition back to its committed offset (or where auto.offset.reset points)."""
        assignment = self._consumer.assignment()
        if not assignment:
            return
        for tp in self.committed(assignment):
            offset = tp.offset if tp.offset >= 0 else self._reset_to
            self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def __enter__(self) -> BatchConsumer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def first_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """For each (topic, partition) in `messages`, the offset of its first message: where to read them again."""
    first: dict[tuple[str, int], int] = {}
    for msg in messages:
        key = (msg.topic(), msg.partition())
        first[key] = min(first.get(key, msg.offset()), msg.offset())
    return [TopicPartition(t, p, o) for (t, p), o in sorted(first.items())]


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """For each (topic, partition) in `messages`, the offset after its last message: what to commit."""
    last: dict[tuple[str, int], int] = {}
    for msg in messages:
        key = (msg.topic(), msg.partition())
        last[key] = max(last.get(key, -1), msg.offset())
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(last.items())]


def read_topic(settings: KafkaSettings, topic: str, group: str) -> list[Message]:
    """Every committed message of `topic` up to its current end: state a service keeps on a topic."""
    partitions = [TopicPartition(topic, p, 0) for p in TopicAdmin(settings).partitions(topic)]
    with BatchConsumer(settings, group, overrides=READER_OVERRIDES) as consumer:
        consumer.assign(partitions)
        return list(consumer.read_to_end(partitions))
