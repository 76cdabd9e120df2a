"""The main job until pipelines exist: a drifting stream replayed into Kafka and ingested into ClickHouse."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from modyn_stream.datasets import generate
from modyn_stream.ingest.service import IngestService, PartitionState
from modyn_stream.ingest.watermark import PartitionProgress, global_watermark
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.metadata import MetadataStore
from modyn_stream.replay.publisher import ReplayResult, TimestampPolicy, replay
from modyn_stream.replay.sources import SampleSource


@dataclass(frozen=True)
class DemoResult:
    dataset: str
    replayed: ReplayResult
    partitions: list[PartitionState]
    watermark: int | None
    windows: list[tuple]  # (window start, samples, top labels) from ClickHouse
    seconds: float


def run_demo(
    settings: KafkaSettings,
    store: MetadataStore,
    *,
    samples: int = 20_000,
    partitions: int = 4,
    seed: int = 0,
    say: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    started = time.monotonic()
    dataset = f"digits_{int(time.time())}"  # a new dataset per run keeps every run's counts exact
    data = generate("digits-drift", samples=samples, seed=seed)
    source = SampleSource(
        [row.tobytes() for row in data.x], data.y, data.t, data.t, "application/x-ndarray;dtype=|u1;shape=8,8"
    )
    say(f"replaying {samples:,} samples of digits-drift as dataset {dataset} ...")
    replayed = replay(settings, dataset, source, TimestampPolicy("field"), partitions=partitions)
    say("ingesting into ClickHouse ...")
    with IngestService(settings, store, max_wait_s=0.2) as service:
        while True:
            service.step()
            states = [s for s in service.partition_states() if s.dataset == dataset]
            if len(states) == partitions and all(s.end_of_stream for s in states):
                break
    now = int(time.time() * 1000)
    progress = [PartitionProgress(s.topic, s.partition, s.next_offset, s.max_event_time, True, now) for s in states]
    watermark = global_watermark(progress, {(s.topic, s.partition) for s in states}, now, None)
    windows = store.query(
        "SELECT toStartOfInterval(event_time, INTERVAL 15 DAY) AS window, count(), topK(3)(label) "
        "FROM samples WHERE dataset = {d:String} GROUP BY window ORDER BY window",
        {"d": dataset},
    )
    return DemoResult(dataset, replayed, states, watermark, windows, time.monotonic() - started)
