"""Publishing a `SampleSource` as SampleEvents, in (event_time, key) order, then end-of-stream markers."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np

from modyn_stream.events import EventCodec
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, sample_topic_spec
from modyn_stream.replay.exceptions import ReplayInputError
from modyn_stream.replay.sources import SampleSource

DELIVERY_WAIT_S = 330.0
TimestampMode = Literal["field", "mtime", "increasing", "random"]


@dataclass(frozen=True)
class TimestampPolicy:
    """Where event times come from. `increasing`: start + i*step; `random`: uniform in [start, start + n*step)."""

    mode: TimestampMode = "increasing"
    start_ms: int = 1_704_067_200_000  # 2024-01-01
    step_ms: int = 1000
    seed: int = 0

    def assign(self, source: SampleSource) -> np.ndarray:
        n = len(source)
        if self.mode == "field":
            if source.timestamps_ms is None:
                raise ReplayInputError("input", "timestamps", "--timestamps field needs a time column/array")
            return source.timestamps_ms
        if self.mode == "mtime":
            return source.file_mtimes_ms
        if self.mode == "increasing":
            return self.start_ms + np.arange(n, dtype=np.int64) * self.step_ms
        rng = np.random.default_rng(self.seed)
        return self.start_ms + rng.integers(0, max(1, n * self.step_ms), size=n, dtype=np.int64)


@dataclass(frozen=True)
class ReplayResult:
    topic: str
    published: int
    skipped: int
    per_partition: dict[int, int]
    first_event_time: int | None
    last_event_time: int | None
    seconds: float
    notes: tuple[str, ...] = ()


def sample_keys(source: SampleSource) -> list[str]:
    """Stable keys: the file name for file-per-sample sources, else the zero-padded source index."""
    if source.names is not None:
        return list(source.names)
    return [f"{i:010d}" for i in range(len(source))]


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions


def replay(
    settings: KafkaSettings,
    dataset: str,
    source: SampleSource,
    timestamps: TimestampPolicy,
    *,
    partitions: int = 4,
    start_at_ms: int | None = None,
    stop_at_ms: int | None = None,
    rate: float | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
    producer: EventProducer | None = None,
) -> ReplayResult:
    """Publish `source` to `{ns}.samples.{dataset}`; every partition gets an end-of-stream marker at the end.

    `producer`: an open one to use instead of a new one (which takes about 0.5 s to get its producer id)."""
    codec = EventCodec.for_settings(settings)
    names = TopicNames(settings.namespace)
    topic = names.samples(dataset)
    admin = TopicAdmin(settings)
    created = admin.ensure([sample_topic_spec(names, dataset, partitions)])
    topic_partitions = admin.partitions(topic)
    notes = ()
    if not created and len(topic_partitions) != partitions:
        notes = (f"{topic} exists with {len(topic_partitions)} partition(s): replaying into those, not {partitions}",)

    times = timestamps.assign(source)
    keys = sample_keys(source)
    chosen = np.ones(len(source), dtype=bool)
    if start_at_ms is not None:
        chosen &= times >= start_at_ms
    if stop_at_ms is not None:
        chosen &= times < stop_at_ms
    indices = np.flatnonzero(chosen)
    key_rank = np.argsort(np.argsort(np.asarray(keys, dtype=object)[indices], kind="stable"), kind="stable")
    order = indices[np.lexsort((key_rank, times[indices]))]  # (event_time, key) order

    labels = source.labels
    content = source.content_type
    per_partition = dict.fromkeys(topic_partitions, 0)
    max_time = dict.fromkeys(topic_partitions)
    total, started = len(order), time.monotonic()
    with nullcontext(producer) if producer else EventProducer(settings) as producer:
        for done, i in enumerate(order.tolist(), start=1):
            key, event_time = keys[i], int(times[i])
            partition = topic_partitions[partition_of(key, len(topic_partitions))]
            record = {
                "dataset": dataset,
                "key": key,
                "event_time": event_time,
                "label": None if labels is None else int(labels[i]),
                "payload": source.payloads[i],
                "content_type": content if isinstance(content, str) else content[i],
            }
            producer.produce(
                topic, codec.encode("SampleEvent", record), key=key, partition=partition, timestamp_ms=event_time
            )
            per_partition[partition] += 1
            max_time[partition] = event_time
            if rate:
                ahead = done / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # pacing, not synchronisation
            if done % 2000 == 0:
                progress(done, total)
        replay_id = uuid.uuid4().hex
        now = int(time.time() * 1000)
        for partition in topic_partitions:
            marker = {
                "dataset": dataset,
                "replay_id": replay_id,
                "partition": partition,
                "num_samples": per_partition[partition],
                "max_event_time": max_time[partition],
                "produced_at": now,
            }
            producer.produce(topic, codec.encode("EndOfStream", marker), partition=partition)
        # Everything on the broker before this returns, whoever owns the producer. librdkafka retries each
        # record for message.timeout.ms (5 min): a broker restart meanwhile loses or doubles nothing.
        producer.flush(DELIVERY_WAIT_S)
    progress(total, total)
    ordered_times = times[order]
    return ReplayResult(
        topic,
        total,
        len(source) - total,
        per_partition,
        int(ordered_times[0]) if total else None,
        int(ordered_times[-1]) if total else None,
        time.monotonic() - started,
        notes,
    )
