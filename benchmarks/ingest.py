"""Ingest rate against the raw rate of one confluent-kafka consumer, on the same topic, in one run.

1. Replay N small samples (32-byte payloads) to a fresh topic of the local Kafka (or
   MODYN_KAFKA_BOOTSTRAP): the publish rate.
2. Raw: one confluent-kafka consumer reads the whole topic (consume() in batches, touching each
   message's value): the ceiling for any consumer in Python. Measured before and after step 3;
   the faster of the two is the baseline.
3. Ingest: the ingest service from the first poll until every sample is a committed row in
   ClickHouse (chDB), i.e. decode + validate + insert + progress + commit.

Targets (issue 3): ingest >= 50% of raw, and >= 100,000 samples/s on the 2-core machine.
Usage: python benchmarks/ingest.py [--samples 300000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, TopicPartition

from benchmarks._report import report
from modyn_stream.ingest.service import IngestService
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.connect import connected
from modyn_stream.metadata import MetadataStore
from modyn_stream.replay.publisher import TimestampPolicy, replay
from modyn_stream.replay.sources import SampleSource


def raw_consume_rate(settings: KafkaSettings, topic: str, partitions: int, total: int) -> float:
    consumer = Consumer(
        {**settings.client_config(), "group.id": f"raw-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen, started = 0, time.perf_counter()
    while seen < total:
        for msg in consumer.consume(10_000, 1.0):
            if msg.error() is None:
                msg.value()
                seen += 1
    rate = seen / (time.perf_counter() - started)
    consumer.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=300_000)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    n, partitions = args.samples, args.partitions
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    source = SampleSource([row.tobytes() for row in x], rng.integers(0, 10, n), None, np.zeros(n, np.int64), "bytes")

    settings = KafkaSettings.from_env(namespace=f"bench{uuid.uuid4().hex[:6]}")
    with connected(settings, say=print) as settings:
        result = replay(settings, "bench", source, TimestampPolicy("increasing", step_ms=1), partitions=partitions)
        total = n + partitions  # samples + end-of-stream markers
        raw_before = raw_consume_rate(settings, result.topic, partitions, total)

        store = MetadataStore(f"chdb://{tempfile.mkdtemp(prefix='bench-ch-')}", "bench")
        store.migrate()
        with IngestService(settings, store, max_batch=50_000, max_wait_s=0.2) as service:
            started = time.perf_counter()
            while service.stats.samples < n:
                service.step()
            ingest = n / (time.perf_counter() - started)
        assert store.query("SELECT count() FROM samples") == [(n,)]
        # Raw is measured before and after ingest (the first read of fresh segments is the slowest);
        # the faster run is the baseline, so the ratio errs against ingest.
        raw = max(raw_before, raw_consume_rate(settings, result.topic, partitions, total))

    report(
        "ingest",
        [
            {"path": "replay (publish)", "samples/s": result.published / result.seconds, "vs raw consume": "-"},
            {"path": "raw confluent-kafka consume", "samples/s": raw, "vs raw consume": "1.00"},
            {
                "path": "ingest to committed ClickHouse rows",
                "samples/s": ingest,
                "vs raw consume": f"{ingest / raw:.2f}",
            },
        ],
        [
            {"measure": f"ingest, {n:,} samples to committed ClickHouse rows", "value": ingest, "unit": "samples/s",
             "baseline": raw, "ratio": ingest / raw, "target": ">= 0.5x raw consume and >= 100,000/s",
             "met": ingest >= raw / 2 and ingest >= 100_000},
            {"measure": "replay (publish)", "value": result.published / result.seconds, "unit": "samples/s",
             "baseline": None, "ratio": None, "target": None, "met": None},
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
