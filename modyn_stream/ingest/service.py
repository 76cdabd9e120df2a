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
insert), and so do samples whose key their dataset already has (the first one is kept: keys.py).
A crash after that flush but before the commit can repeat a dead letter; its `dlq.source.*`
headers identify duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, Message, TopicPartition

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.events.codec import SINGLE_OBJECT_MAGIC
from modyn_stream.ingest.avro_rows import COLUMNS as AVRO_COLUMNS
from modyn_stream.ingest.avro_rows import AvroRowBlock
from modyn_stream.ingest.keys import body_key, duplicates
from modyn_stream.ingest.samples import SampleRows, invalid_reason
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.dlq import DeadLetterPublisher, dlq_limit_bytes
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, project_topic_specs
from modyn_stream.metadata import MetadataError, MetadataStore

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


@dataclass
class _BatchPlan:
    """One batch sorted out: fast-path Avro rows or decoded rows, end markers, dead letters, per-partition counts."""

    block: AvroRowBlock | None
    rows: SampleRows = field(default_factory=SampleRows)
    dead: list[tuple[Message, str]] = field(default_factory=list)
    ended: dict[tuple[str, int], bool] = field(default_factory=dict)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    max_times: dict[tuple[str, int], int] = field(default_factory=dict)

    def sample(self, key: tuple[str, int], event_time: int | None) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        self.ended[key] = False  # data after an end marker makes the partition live again
        if event_time is not None and event_time > self.max_times.get(key, event_time - 1):
            self.max_times[key] = event_time


def _token(path: str, ranges: dict[tuple[str, int], tuple[int, int]]) -> str:
    """The insert deduplication token: the batch's per-partition offset ranges."""
    return path + ":" + ",".join(f"{t}-{p}-{a}-{b}" for (t, p), (a, b) in sorted(ranges.items()))


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
        producer: EventProducer | None = None,
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        self.names = TopicNames(settings.namespace)
        self.store = store
        self.codec = codec or EventCodec.for_settings(settings)
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.fault = fault  # crash-injection points for tests: before_insert, after_insert, before_commit
        self.stats = IngestStats()
        self._prefix = f"{settings.namespace}.samples."
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._buffer: list[Message] = []
        self._closing = False
        self._buffer_since = 0.0
        self._sample_schema = self.codec.schemas.get("SampleEvent")
        self._sample_header = SINGLE_OBJECT_MAGIC + self._sample_schema.fingerprint
        admin = TopicAdmin(settings)
        admin.ensure(project_topic_specs(self.names))
        store.migrate()
        self.producer = producer or EventProducer(settings)  # dead letters and progress records
        self.dead_letters = DeadLetterPublisher(self.producer, self.names.dlq, dlq_limit_bytes(admin, self.names.dlq))
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
        if self._closing:  # a group join that completes inside close(): nothing is read any more
            return
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
        self._publish_progress(list(states.values()), _now_ms())
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
        messages, ranges = self._pending()
        self._buffer = []
        if not ranges:
            return 0
        duplicates = self._duplicates(messages)
        plan = self._plan(messages, duplicates, fast=True)
        published = self._publish_dead_letters(plan.dead, already=set())
        self.fault("before_insert")
        if plan.block is not None:
            try:
                self.store.insert_avro("samples_avro", AVRO_COLUMNS, plan.block.render(), _token("avro", ranges))
            except MetadataError as exc:
                # Some sample failed ClickHouse's checks: decode the batch here to find and dead-letter it.
                log.info("ingest: fast path rejected a batch (%s); checking it sample by sample", exc)
                plan = self._plan(messages, duplicates, fast=False)
                self._publish_dead_letters(plan.dead, already=published)
        if plan.block is None and plan.rows:
            self.store.insert("samples", plan.rows.columns(_now_ms()), dedup_token=_token("rows", ranges))
        self.fault("after_insert")
        if plan.block is not None:
            plan.max_times.update(self._fast_max_times(ranges))
        self._advance(plan, ranges)
        self.fault("before_commit")
        self.consumer.commit_offsets([TopicPartition(t, p, b + 1) for (t, p), (_, b) in ranges.items()])
        inserted = sum(plan.counts.values())
        self.stats.samples += inserted
        self.stats.dead_letters += len(plan.dead)
        self.stats.batches += 1
        return inserted

    def _pending(self) -> tuple[list[Message], dict[tuple[str, int], tuple[int, int]]]:
        """Buffered messages not yet in ClickHouse, and each partition's (first, last) offset among them."""
        messages, ranges = [], {}
        for msg in self._buffer:
            key = (msg.topic(), msg.partition())
            state = self._states.get(key)
            offset = msg.offset()
            if state is None or offset < state.next_offset:
                continue  # revoked meanwhile, or already in ClickHouse
            messages.append(msg)
            ranges[key] = (ranges.get(key, (offset, offset))[0], offset)
        return messages, ranges

    def _duplicates(self, messages: list[Message]) -> dict[tuple[str, int, int], str]:
        """The samples of a batch whose key another sample of their dataset holds (see keys.py), with why."""
        header, samples = self._sample_header, []
        for msg in messages:
            value, where = msg.value(), (msg.topic(), msg.partition(), msg.offset())
            dataset = self._states[where[:2]].dataset
            if value is not None and value[:10] == header:
                key = body_key(value[10:])
            else:
                try:
                    event = self.codec.decode(value)
                except EventDecodeError:
                    continue
                key = event.record["key"] if event.name == "SampleEvent" else None
            if key is not None:
                samples.append((dataset, key, where))
        return duplicates(self.store, samples) if samples else {}

    def _plan(self, messages: list[Message], duplicates: dict, fast: bool) -> _BatchPlan:
        """Sort a batch into samples, end markers and dead letters (among them `duplicates`).

        With `fast`, SampleEvents in the current schema and single-object framing go into an Avro block
        undecoded; if any sample needs decoding (another framing, an older schema), the whole batch is
        planned without the fast path, so the batch stays one insert."""
        plan = _BatchPlan(block=AvroRowBlock(self._sample_schema) if fast else None)
        header, decode = self._sample_header, self.codec.decode
        for msg in messages:
            key = (msg.topic(), msg.partition())
            value = msg.value()
            if (duplicate := duplicates.get((*key, msg.offset()))) is not None:
                plan.dead.append((msg, duplicate))
                continue
            if plan.block is not None and value is not None and value[:10] == header:
                plan.block.add(value[10:], key[0], key[1], msg.offset())
                plan.sample(key, None)
                continue
            try:
                event = decode(value)
            except EventDecodeError as exc:
                plan.dead.append((msg, str(exc)))
                continue
            if event.name == "SampleEvent":
                if plan.block is not None:
                    return self._plan(messages, duplicates, fast=False)
                reason = invalid_reason(event.record, self._states[key].dataset)
                if reason is None:
                    plan.rows.append(event.record, key[0], key[1], msg.offset())
                    plan.sample(key, event.record["event_time"])
                    continue
            elif event.name == "EndOfStream":
                plan.ended[key] = True
                continue
            else:
                reason = f"a {event.name} does not belong on a samples topic"
            plan.dead.append((msg, reason))
        if plan.block is not None and plan.block.rows == 0:
            plan.block = None
        return plan

    def _publish_dead_letters(self, dead: list[tuple[Message, str]], already: set) -> set:
        """Send dead letters (once each) and wait until they are durable, before their offsets can be committed."""
        sent = set(already)
        for msg, reason in dead:
            if (msg.topic(), msg.partition(), msg.offset()) not in sent:
                self.dead_letters.publish(msg, reason, STAGE)
                sent.add((msg.topic(), msg.partition(), msg.offset()))
        if len(sent) > len(already):
            self.producer.flush()
        return sent

    def _fast_max_times(self, ranges: dict[tuple[str, int], tuple[int, int]]) -> dict[tuple[str, int], int]:
        """Largest event time per partition of the rows ClickHouse just parsed (from ingest_batch_stats)."""
        clauses, params = [], {}
        for i, ((topic, partition), (first, last)) in enumerate(ranges.items()):
            clauses.append(
                f"(topic = {{t{i}:String}} AND kafka_partition = {{p{i}:UInt32}} "
                f"AND first_offset >= {{a{i}:UInt64}} AND last_offset <= {{b{i}:UInt64}})"
            )
            params |= {f"t{i}": topic, f"p{i}": partition, f"a{i}": first, f"b{i}": last}
        rows = self.store.query(
            "SELECT topic, kafka_partition, toUnixTimestamp64Milli(max(max_event_time)) FROM ingest_batch_stats "
            f"WHERE {' OR '.join(clauses)} GROUP BY topic, kafka_partition",
            params,
        )
        return {(topic, partition): latest for topic, partition, latest in rows}

    def _advance(self, plan: _BatchPlan, ranges: dict) -> None:
        """Move each touched partition's state past its range; persist it, then publish it."""
        now = _now_ms()
        touched = []
        for key, (_, last) in ranges.items():
            state = self._states[key]
            state.next_offset = last + 1
            state.samples_ingested += plan.counts.get(key, 0)
            latest = plan.max_times.get(key)
            if latest is not None:
                state.max_event_time = latest if state.max_event_time is None else max(state.max_event_time, latest)
            state.end_of_stream = plan.ended.get(key, state.end_of_stream)
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
        self._publish_progress(touched, now)

    def _publish_progress(self, states: list[PartitionState], now: int) -> None:
        """One IngestProgress per partition (keyed by it, for the compacted topic), flushed."""
        for state in states:
            self.producer.produce(
                self.names.ingest_progress,
                self.codec.encode("IngestProgress", state.progress_event(now)),
                key=f"{state.topic}:{state.partition}",
            )
        self.producer.flush()

    def partition_states(self) -> list[PartitionState]:
        return sorted(self._states.values(), key=lambda s: (s.topic, s.partition))

    def close(self, abandon: bool = False) -> None:
        """`abandon`: a failed service, closed without waiting on the broker (its next instance redoes the work)."""
        self._closing = True
        self.consumer.close()
        if abandon:
            self.producer.abandon()
        else:
            self.producer.flush()

    def __enter__(self) -> IngestService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _triples(tps: list[TopicPartition]):
    return [(tp.topic, tp.partition, tp.offset) for tp in tps]
