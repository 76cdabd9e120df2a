"""The ingest service: sample metadata from `{ns}.samples.*` into ClickHouse `samples`, exactly once.

Exactly once without a transaction spanning Kafka and ClickHouse, following the ClickHouse
Kafka Connect sink's idea that the sink's own state decides where to resume:

* One batch is one insert (one block, so it lands whole or not at all) carrying a deduplication
  token built from its per-partition offset ranges (`topic-partition-first-last`), so an insert
  retried after an unclear outcome is dropped by ClickHouse.
* After the insert, the per-partition position (`next_offset`, end-of-stream, ...) goes to
  ClickHouse `ingest_progress`, then to `{ns}.ingest-progress`, and only then are Kafka offsets
  committed.
* On assignment a partition resumes at the largest of: the committed offset, `next_offset` in
  `ingest_progress`, and one past the largest offset present in `samples`. So a crash at any
  point (before or after the insert, before the commit) neither doubles nor loses a row, whatever
  the batch boundaries were: rows already in ClickHouse are never read again.

Events that cannot be decoded or validated go to `{ns}.dlq` with the reason (flushed before the
insert). A crash after that flush but before the commit can repeat a dead letter; its
`dlq.source.*` headers identify duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, Message, TopicPartition

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.ingest.samples import SampleRows, invalid_reason
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import BatchConsumer, ShutdownFlag
from modyn_stream.kafka.dlq import DeadLetterPublisher
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, project_topic_specs
from modyn_stream.metadata import MetadataStore

log = logging.getLogger(__name__)

STAGE = "ingest"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class PartitionState:
    """What ClickHouse holds for one partition: where to resume and what the progress event says."""

    topic: str
    partition: int
    dataset: str
    next_offset: int = 0
    max_event_time: int | None = None
    samples_ingested: int = 0
    end_of_stream: bool = False

    def progress_event(self, now_ms: int) -> dict:
        return {
            "dataset": self.dataset,
            "topic": self.topic,
            "partition": self.partition,
            "next_offset": self.next_offset,
            "max_event_time": self.max_event_time,
            "samples_ingested": self.samples_ingested,
            "end_of_stream": self.end_of_stream,
            "updated_at": now_ms,
        }


@dataclass
class IngestStats:
    samples: int = 0
    dead_letters: int = 0
    batches: int = 0


class IngestService:
    """One member of the ingest consumer group; `step()` does one poll and, when due, one flush."""

    def __init__(
        self,
        settings: KafkaSettings,
        store: MetadataStore,
        *,
        max_batch: int = 20_000,
        max_wait_s: float = 0.5,
        codec: EventCodec | None = None,
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        self.names = TopicNames(settings.namespace)
        self.store = store
        self.codec = codec or EventCodec.from_registry_url(settings.schema_registry_url, **settings.registry_config())
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.fault = fault  # crash-injection points for tests: before_insert, after_insert, before_commit
        self.stats = IngestStats()
        self._prefix = f"{settings.namespace}.samples."
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._buffer: list[Message] = []
        self._buffer_since = 0.0
        TopicAdmin(settings).ensure(project_topic_specs(self.names))
        store.migrate()
        self.producer = EventProducer(settings)
        self.dead_letters = DeadLetterPublisher(self.producer, self.names.dlq)
        self.consumer = BatchConsumer(
            settings,
            f"{settings.namespace}.ingest",
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            overrides={"topic.metadata.refresh.interval.ms": 2000},  # find new dataset topics quickly
        )
        self.consumer.subscribe([f"^{settings.namespace.replace('.', '[.]')}[.]samples[.].+"])

    # -- rebalancing ----------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        states = self._load_states([(tp.topic, tp.partition) for tp in partitions])
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=30)}
        positioned = []
        for tp in partitions:
            key = (tp.topic, tp.partition)
            state = states[key]
            state.next_offset = max(state.next_offset, committed.get(key, -1))
            self._states[key] = state
            positioned.append(TopicPartition(tp.topic, tp.partition, state.next_offset))
        consumer.assign(positioned)
        # Announce where every assigned partition stands, so watermarks are known without new data.
        now = _now_ms()
        for state in states.values():
            self.producer.produce(
                self.names.ingest_progress,
                self.codec.encode("IngestProgress", state.progress_event(now)),
                key=f"{state.topic}:{state.partition}",
            )
        self.producer.flush()
        log.info("ingest: assigned %s", ", ".join(f"{t}[{p}]@{o}" for t, p, o in _triples(positioned)))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        # Uninserted messages of revoked partitions are simply dropped: their new owner reads them again.
        self._buffer = [m for m in self._buffer if (m.topic(), m.partition()) not in revoked]
        for key in revoked:
            self._states.pop(key, None)

    def _load_states(self, keys: list[tuple[str, int]]) -> dict[tuple[str, int], PartitionState]:
        states = {key: PartitionState(key[0], key[1], key[0].removeprefix(self._prefix)) for key in keys}
        topics = sorted({t for t, _ in keys})
        if not topics:
            return states
        params = {"topics": topics}
        for topic, partition, next_offset, end_of_stream in self.store.query(
            "SELECT topic, kafka_partition, next_offset, end_of_stream FROM ingest_progress FINAL "
            "WHERE topic IN {topics:Array(String)}",
            params,
        ):
            if (topic, partition) in states:
                states[(topic, partition)].next_offset = next_offset
                states[(topic, partition)].end_of_stream = bool(end_of_stream)
        for topic, partition, last_offset, max_time, count in self.store.query(
            "SELECT topic, kafka_partition, max(kafka_offset), toUnixTimestamp64Milli(max(event_time)), count() "
            "FROM samples WHERE topic IN {topics:Array(String)} GROUP BY topic, kafka_partition",
            params,
        ):
            if (topic, partition) in states:
                state = states[(topic, partition)]
                state.next_offset = max(state.next_offset, last_offset + 1)
                state.max_event_time, state.samples_ingested = max_time, count
        return states

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, shutdown: ShutdownFlag) -> IngestStats:
        while not shutdown.is_set:
            self.step()
        self.flush()
        return self.stats

    def step(self) -> int:
        """Poll once; flush when the batch is full or old enough. Returns the samples flushed."""
        wait = self.max_wait_s
        if self._buffer:
            wait = max(0.0, self._buffer_since + self.max_wait_s - time.monotonic())
        messages = self.consumer.poll_batch(self.max_batch - len(self._buffer), timeout_s=min(wait, 1.0))
        if messages and not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer += messages
        due = self._buffer and (
            len(self._buffer) >= self.max_batch or time.monotonic() - self._buffer_since >= self.max_wait_s
        )
        return self.flush() if due else 0

    def flush(self) -> int:
        """Ingest the buffered messages (insert, progress, commit); return the samples inserted."""
        if not self._buffer:
            return 0
        rows, ranges, ended, dead = SampleRows(), {}, {}, 0
        decode = self.codec.decode
        for msg in self._buffer:
            key = (msg.topic(), msg.partition())
            state = self._states.get(key)
            offset = msg.offset()
            if state is None or offset < state.next_offset:
                continue  # revoked meanwhile, or already in ClickHouse
            first, _ = ranges.get(key, (offset, offset))
            ranges[key] = (first, offset)
            try:
                event = decode(msg.value())
            except EventDecodeError as exc:
                self.dead_letters.publish(msg, str(exc), STAGE)
                dead += 1
                continue
            if event.name == "SampleEvent":
                reason = invalid_reason(event.record, state.dataset)
                if reason is None:
                    rows.append(event.record, key[0], key[1], offset)
                    ended[key] = False  # data after an end marker makes the partition live again
                    continue
            elif event.name == "EndOfStream":
                ended[key] = True
                continue
            else:
                reason = f"a {event.name} does not belong on a samples topic"
            self.dead_letters.publish(msg, reason, STAGE)
            dead += 1
        self._buffer = []
        if not ranges:
            return 0
        if dead:
            self.producer.flush()  # dead letters are durable before their offsets can be committed
        self.fault("before_insert")
        if rows:
            token = ",".join(f"{t}-{p}-{a}-{b}" for (t, p), (a, b) in sorted(ranges.items()))
            self.store.insert("samples", rows.columns(_now_ms()), dedup_token=token)
        self.fault("after_insert")
        self._advance(rows, ranges, ended)
        self.fault("before_commit")
        self.consumer.commit_offsets([TopicPartition(t, p, b + 1) for (t, p), (_, b) in ranges.items()])
        self.stats.samples += len(rows)
        self.stats.dead_letters += dead
        self.stats.batches += 1
        return len(rows)

    def _advance(self, rows: SampleRows, ranges: dict, ended: dict) -> None:
        """Move each touched partition's state past its range; persist it, then publish it."""
        per_partition: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, partition, event_time in zip(rows.topic, rows.kafka_partition, rows.event_time, strict=True):
            count, latest = per_partition.get((topic, partition), (0, event_time))
            per_partition[(topic, partition)] = (count + 1, max(latest, event_time))
        now = _now_ms()
        touched = []
        for key, (_, last) in ranges.items():
            state = self._states[key]
            count, latest = per_partition.get(key, (0, None))
            state.next_offset = last + 1
            state.samples_ingested += count
            if latest is not None:
                state.max_event_time = latest if state.max_event_time is None else max(state.max_event_time, latest)
            state.end_of_stream = ended.get(key, state.end_of_stream)
            touched.append(state)
        self.store.insert(
            "ingest_progress",
            {
                "topic": [s.topic for s in touched],
                "kafka_partition": [s.partition for s in touched],
                "dataset": [s.dataset for s in touched],
                "next_offset": [s.next_offset for s in touched],
                "max_event_time": [s.max_event_time for s in touched],
                "samples_ingested": [s.samples_ingested for s in touched],
                "end_of_stream": [s.end_of_stream for s in touched],
                "updated_at": [now] * len(touched),
            },
        )
        for state in touched:
            self.producer.produce(
                self.names.ingest_progress,
                self.codec.encode("IngestProgress", state.progress_event(now)),
                key=f"{state.topic}:{state.partition}",
            )
        self.producer.flush()

    def partition_states(self) -> list[PartitionState]:
        return sorted(self._states.values(), key=lambda s: (s.topic, s.partition))

    def close(self) -> None:
        self.consumer.close()
        self.producer.flush()

    def __enter__(self) -> IngestService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _triples(tps: list[TopicPartition]):
    return [(tp.topic, tp.partition, tp.offset) for tp in tps]
