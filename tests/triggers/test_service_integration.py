"""The trigger service on real Kafka and ClickHouse: reference boundaries, restarts, late samples."""

import time
import uuid

import numpy as np
import pytest
import yaml
from confluent_kafka import TopicPartition

from modyn_stream.events import EventCodec
from modyn_stream.ingest.service import IngestService
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.registry import register_pipeline
from modyn_stream.replay.publisher import TimestampPolicy, replay, sample_keys
from modyn_stream.replay.sources import SampleSource
from modyn_stream.triggers.service import TriggerService
from tests.pipeline.test_config import DIGITS

pytestmark = pytest.mark.integration


def pipeline(dataset: str, trigger: dict):
    data = yaml.safe_load(DIGITS.read_text())
    data["data"]["dataset_id"] = dataset
    data["trigger"] = trigger
    config, problems = validate_data(data)
    assert not problems, problems
    return config


def source_of(n: int, seed: int) -> SampleSource:
    return SampleSource([b"p"] * n, np.zeros(n, dtype=np.int64), None, np.zeros(n, dtype=np.int64), "x")


def ingest_all(settings, store, dataset: str, partitions: int, total: int) -> None:
    """Ingest until `total` samples of `dataset` are in ClickHouse and every partition has ended."""
    with IngestService(settings, store, max_batch=500, max_wait_s=0.1) as service:
        deadline = time.monotonic() + 60
        while True:
            states = [s for s in service.partition_states() if s.dataset == dataset]
            ended = len(states) == partitions and all(s.end_of_stream for s in states)
            if ended and sum(s.samples_ingested for s in states) == total:
                return
            assert time.monotonic() < deadline, "ingest did not reach the end of the stream"
            service.step()


def trigger_events(settings) -> list[dict]:
    topic = TopicNames(settings.namespace).triggers
    codec = EventCodec()
    with BatchConsumer(settings, f"check-{uuid.uuid4().hex[:6]}") as consumer:
        partitions = [TopicPartition(topic, p, 0) for p in range(3)]
        consumer.assign(partitions)
        events = [codec.decode(m.value()).record for m in consumer.read_to_end(partitions)]
    return sorted(events, key=lambda e: (e["pipeline_id"], e["trigger_index"]))


def reference_order(source: SampleSource, times: np.ndarray) -> list[tuple[int, str]]:
    return sorted(zip(times.tolist(), sample_keys(source), strict=True))


def test_data_amount_trigger_matches_the_reference_and_ignores_leftovers(kafka_settings, store):
    source = source_of(2500, 0)
    policy = TimestampPolicy("random", step_ms=2, seed=5)  # many equal event times: ties by key
    replay(kafka_settings, "amount", source, policy, partitions=3)
    ingest_all(kafka_settings, store, "amount", 3, 2500)
    pid = register_pipeline(pipeline("amount", {"id": "DataAmountTrigger", "num_samples": 400}), kafka_settings, store)
    with TriggerService(kafka_settings, store) as service:
        assert service.step() == 6  # floor(2500 / 400); the 100 leftover samples do not fire
        assert service.step() == 0
    order = reference_order(source, policy.assign(source))
    expected = [order[400 * (i + 1) - 1] for i in range(6)]
    events = trigger_events(kafka_settings)
    assert [(e["boundary_event_time"], e["boundary_key"]) for e in events] == expected
    assert [e["trigger_index"] for e in events] == list(range(6)) and {e["pipeline_id"] for e in events} == {pid}
    assert all(e["num_new_samples"] == 400 for e in events)
    rows = store.query("SELECT trigger_index, toUnixTimestamp64Milli(boundary_event_time), boundary_key "
                       "FROM triggers FINAL ORDER BY trigger_index")  # fmt: skip
    assert [(t, k) for _, t, k in rows] == expected
    # Each row keeps the snapshot: the samples up to trigger j are exactly the first 400 * (j + 1).
    for j in range(6):
        up_to = store.query(
            "SELECT count() FROM samples AS s, (SELECT * FROM triggers FINAL WHERE trigger_index = {j:UInt32}) AS t "
            "WHERE s.dataset = 'amount' AND s.kafka_offset < t.snapshot_offsets[indexOf(t.snapshot_partitions, "
            "s.kafka_partition)] AND (s.event_time, s.key) <= (t.boundary_event_time, t.boundary_key)",
            {"j": j},
        )
        assert up_to == [(400 * (j + 1),)]


def test_time_trigger_matches_the_reference(kafka_settings, store):
    source = source_of(1500, 1)
    policy = TimestampPolicy("random", start_ms=0, step_ms=1000, seed=2)  # over 1,500 s
    replay(kafka_settings, "timed", source, policy, partitions=2)
    ingest_all(kafka_settings, store, "timed", 2, 1500)
    config = pipeline("timed", {"id": "TimeTrigger", "every": "100s", "start_timestamp": 0})
    register_pipeline(config, kafka_settings, store)
    with TriggerService(kafka_settings, store) as service:
        service.step()
    order = reference_order(source, policy.assign(source))
    last_time = order[-1][0]
    expected = []
    for end in range(100_000, last_time + 1, 100_000):  # periods that the stream's event time has passed
        inside = [s for s in order if end - 100_000 <= s[0] < end]
        if inside:
            expected.append((inside[-1], len(inside)))
    events = trigger_events(kafka_settings)
    assert [((e["boundary_event_time"], e["boundary_key"]), e["num_new_samples"]) for e in events] == expected
    assert len(events) == last_time // 100_000


def test_restarts_at_any_point_give_identical_triggers(kafka_settings, store):
    source = source_of(2000, 3)
    policy = TimestampPolicy("random", step_ms=3, seed=9)
    times = policy.assign(source)
    middle = int(np.median(times))
    config = pipeline("restart", {"id": "DataAmountTrigger", "num_samples": 300})
    register_pipeline(config, kafka_settings, store)
    first = replay(kafka_settings, "restart", source, policy, partitions=3, stop_at_ms=middle)
    ingest_all(kafka_settings, store, "restart", 3, first.published)

    class Crash(Exception):
        pass

    crashes = {"left": 2}

    def fault(point):
        if crashes["left"]:
            crashes["left"] -= 1
            raise Crash(point)

    for _ in range(3):  # crash right after committing a trigger, before ClickHouse has it; restart
        service = TriggerService(kafka_settings, store, fault=fault)
        try:
            service.step()
            break
        except Crash:
            pass
        finally:
            service.close()
    replay(kafka_settings, "restart", source, policy, partitions=3, start_at_ms=middle)
    ingest_all(kafka_settings, store, "restart", 3, 2000)
    with TriggerService(kafka_settings, store) as service:  # a fresh instance, mid-stream
        service.step()
    order = reference_order(source, times)
    expected = [order[300 * (i + 1) - 1] for i in range(2000 // 300)]
    events = trigger_events(kafka_settings)
    assert [(e["boundary_event_time"], e["boundary_key"]) for e in events] == expected
    assert [e["trigger_index"] for e in events] == list(range(len(expected)))
    rows = store.query("SELECT count(), uniqExact(trigger_index) FROM triggers FINAL")
    assert rows == [(len(expected), len(expected))]


def test_late_samples_count_into_the_next_trigger_and_end_of_stream_can_fire(kafka_settings, store):
    source = source_of(1000, 4)
    policy = TimestampPolicy("increasing", start_ms=1_000_000, step_ms=10)
    replay(kafka_settings, "late", source, policy, partitions=2)
    ingest_all(kafka_settings, store, "late", 2, 1000)
    config = pipeline("late", {"id": "DataAmountTrigger", "num_samples": 300, "fire_on_end_of_stream": True})
    register_pipeline(config, kafka_settings, store)
    with TriggerService(kafka_settings, store) as service:
        assert service.step() == 4  # 3 full triggers + the 100 leftovers at the end of the stream
    codec = EventCodec()
    topic = TopicNames(kafka_settings.namespace).samples("late")
    with EventProducer(kafka_settings) as producer:
        for i in range(50):  # late: event times long before the last boundary
            record = {"dataset": "late", "key": f"late{i:02d}", "event_time": 1_000_000 + i, "payload": b"p"}
            producer.produce(topic, codec.encode("SampleEvent", record), partition=i % 2)
        for i in range(300):  # new samples after the end
            record = {"dataset": "late", "key": f"new{i:03d}", "event_time": 2_000_000 + i, "payload": b"p"}
            producer.produce(topic, codec.encode("SampleEvent", record), partition=i % 2)
        end = {"dataset": "late", "replay_id": "r2", "num_samples": 0, "produced_at": 0}
        for p in range(2):
            producer.produce(topic, codec.encode("EndOfStream", {**end, "partition": p}), partition=p)
    ingest_all(kafka_settings, store, "late", 2, 1350)
    with TriggerService(kafka_settings, store) as service:
        assert service.step() == 2
    events = trigger_events(kafka_settings)
    assert [e["num_new_samples"] for e in events] == [300, 300, 300, 100, 300, 50]
    assert events[3]["reason"] == "end of stream" and events[3]["boundary_key"] == "0000000999"
    assert (events[4]["boundary_event_time"], events[4]["boundary_key"]) == (2_000_249, "new249")  # 50 late + 250


def test_garbage_on_the_progress_and_trigger_topics_stops_no_trigger(kafka_settings, store):
    # Records that are not ours on the topics the trigger service reads back crashed it on every start.
    names = TopicNames(kafka_settings.namespace)
    source = source_of(1000, 0)
    replay(kafka_settings, "noisy", source, TimestampPolicy(), partitions=1)
    pid = register_pipeline(pipeline("noisy", {"id": "DataAmountTrigger", "num_samples": 300}), kafka_settings, store)
    with EventProducer(kafka_settings) as producer:
        producer.produce(names.ingest_progress, b"\xde\xad", key="x")
        producer.produce(names.triggers, b"not an event", key=pid)
    ingest_all(kafka_settings, store, "noisy", 1, 1000)
    with TriggerService(kafka_settings, store) as service:
        assert service.step() == 3
    with TriggerService(kafka_settings, store) as restarted:  # reads the triggers topic back, garbage and all
        assert restarted.step() == 0 and restarted.states[pid].next_index == 3
