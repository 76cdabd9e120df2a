"""A round trip of SampleEvents through Kafka: the smallest end-to-end check of a setup.

Produces `count` events over several partitions (then an end-of-stream marker per partition),
reads exactly that range back with a fresh consumer, decodes every record and compares.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from confluent_kafka import TopicPartition

from modyn_stream.events import EventCodec
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, sample_topic_spec
from modyn_stream.replay.publisher import partition_of


@dataclass(frozen=True)
class RoundTripResult:
    topic: str
    produced: int
    consumed: int
    end_of_stream_markers: int
    mismatches: int
    produce_s: float
    consume_s: float

    @property
    def ok(self) -> bool:
        return self.produced == self.consumed and self.mismatches == 0


def run_roundtrip(
    settings: KafkaSettings,
    *,
    count: int = 10_000,
    partitions: int = 3,
    dataset: str = "roundtrip",
    progress: Callable[[str, int], None] = lambda stage, n: None,
) -> RoundTripResult:
    codec = EventCodec.for_settings(settings)
    topic = TopicNames(settings.namespace).samples(dataset)
    admin = TopicAdmin(settings)
    admin.ensure([sample_topic_spec(TopicNames(settings.namespace), dataset, partitions)])
    parts = admin.partitions(topic)

    consumer = BatchConsumer(settings, f"roundtrip-{uuid.uuid4().hex[:8]}", isolation_level="read_committed")
    tps = [TopicPartition(topic, p) for p in parts]
    start = {tp.partition: high for tp, (_, high) in zip(tps, consumer.watermarks(tps), strict=True)}

    run_id = uuid.uuid4().hex[:8]
    rng = np.random.default_rng(0)
    payloads = rng.integers(0, 256, size=(count, 64), dtype=np.uint8)
    base_time = 1_700_000_000_000
    expected: dict[str, bytes] = {}
    sent = dict.fromkeys(parts, 0)
    t0 = time.perf_counter()
    with EventProducer(settings) as producer:
        for i in range(count):
            key = f"{run_id}-{i:08d}"
            record = {"dataset": dataset, "key": key, "event_time": base_time + i * 1000, "label": i % 10}
            record["payload"] = payloads[i].tobytes()
            expected[key] = record["payload"]
            partition = parts[partition_of(key, len(parts))]
            producer.produce(topic, codec.encode("SampleEvent", record), key=key, partition=partition)
            sent[partition] += 1
            if i % 1000 == 999:
                progress("produced", i + 1)
        producer.flush()
        for p in parts:
            marker = {"dataset": dataset, "replay_id": run_id, "partition": p, "num_samples": sent[p]}
            marker |= {"max_event_time": None, "produced_at": int(time.time() * 1000)}
            producer.produce(topic, codec.encode("EndOfStream", marker), partition=p)
    produce_s = time.perf_counter() - t0

    end = {tp.partition: high for tp, (_, high) in zip(tps, consumer.watermarks(tps), strict=True)}
    consumer.assign([TopicPartition(topic, p, start[p]) for p in parts])
    pending = {p for p in parts if end[p] > start[p]}
    consumed = markers = mismatches = 0
    t0 = time.perf_counter()
    with consumer:
        while pending:
            for msg in consumer.poll_batch(5000, 1.0):
                event = codec.decode(msg.value())
                if event.name == "EndOfStream":
                    markers += event.record["replay_id"] == run_id
                else:
                    consumed += 1
                    mismatches += expected.get(event.record["key"]) != event.record["payload"]
                    if consumed % 1000 == 0:
                        progress("consumed", consumed)
                if msg.offset() + 1 >= end[msg.partition()]:
                    pending.discard(msg.partition())
    return RoundTripResult(topic, count, consumed, markers, mismatches, produce_s, time.perf_counter() - t0)
