"""The selector service on real Kafka and ClickHouse: exactly-once sets, identical manifests, dead letters."""

import uuid

import numpy as np
import pytest
from confluent_kafka import TopicPartition

from modyn_stream.artifacts import ArtifactStore, sha256_file
from modyn_stream.events import EventCodec
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.dlq import HEADER_REASON
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.registry import register_pipeline
from modyn_stream.replay.publisher import TimestampPolicy, replay
from modyn_stream.replay.sources import SampleSource
from modyn_stream.selection.manifest import read_manifest
from modyn_stream.selection.service import SelectorService
from modyn_stream.selection.strategies import select
from modyn_stream.triggers.service import TriggerService
from tests.triggers.test_service_integration import ingest_all, pipeline

pytestmark = pytest.mark.integration

SELECTION = {"name": "CoresetStrategy", "presampling_config": {"strategy": "RandomNoReplacement", "ratio": 50}}


class Crash(Exception):
    pass


def crashes_at(*calls: int):
    """A fault hook raising on its n-th calls (counted from 1)."""
    seen = {"n": 0}

    def fault(point):
        seen["n"] += 1
        if seen["n"] in calls:
            raise Crash(point)

    return fault


def read_all(settings, topic: str) -> list:
    with BatchConsumer(settings, f"check-{uuid.uuid4().hex[:6]}") as consumer:
        partitions = [TopicPartition(topic, p, 0) for p in range(3 if not topic.endswith("dlq") else 1)]
        consumer.assign(partitions)
        return list(consumer.read_to_end(partitions))


def run_until_idle(make_service, crash_budget: int = 5) -> None:
    """Step fresh instances until one finds nothing to do; a Crash kills the instance, as a SIGKILL would."""
    for _ in range(crash_budget + 1):
        service = make_service()
        try:
            while service.step():
                pass
            return
        except Crash:
            pass
        finally:
            service.close()
    raise AssertionError("the service kept crashing")


def run_pipeline(settings, store, artifacts, *, crash: bool):
    """Replay 2,000 samples in two halves; after each half ingest, trigger and select (with crashes if asked)."""
    n = 2000
    source = SampleSource([b"p"] * n, np.arange(n) % 5, None, np.zeros(n, dtype=np.int64), "x")
    policy = TimestampPolicy("random", step_ms=3, seed=9)
    middle = int(np.median(policy.assign(source)))
    config = pipeline("sel", {"id": "DataAmountTrigger", "num_samples": 300})
    config = config.model_validate({**config.model_dump(), "selection_strategy": SELECTION})
    pid = register_pipeline(config, settings, store)
    published = replay(settings, "sel", source, policy, partitions=3, stop_at_ms=middle).published
    trigger_fault = crashes_at(2) if crash else lambda point: None  # counts across restarts
    selector_fault = crashes_at(1, 3, 4) if crash else lambda point: None
    for half in range(2):
        ingest_all(settings, store, "sel", 3, published)
        run_until_idle(lambda: TriggerService(settings, store, fault=trigger_fault))
        run_until_idle(lambda: SelectorService(settings, store, artifacts, fault=selector_fault))
        if half == 0:
            published += replay(settings, "sel", source, policy, partitions=3, start_at_ms=middle).published
    codec = EventCodec()
    events = [codec.decode(m.value()).record for m in read_all(settings, TopicNames(settings.namespace).training_sets)]
    return pid, config, sorted(events, key=lambda e: e["trigger_index"])


def test_restarts_give_one_event_per_trigger_and_byte_identical_manifests(
    kafka_bootstrap_server, clickhouse_dsn, tmp_path
):
    from modyn_stream.kafka.config import KafkaSettings

    runs = []
    for crash in (True, False):
        settings = KafkaSettings(bootstrap_servers=kafka_bootstrap_server, namespace=f"t{uuid.uuid4().hex[:10]}")
        store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
        artifacts = ArtifactStore(tmp_path / ("crashed" if crash else "clean"))
        runs.append((store, *run_pipeline(settings, store, artifacts, crash=crash)))
    (store, pid, config, events), (_, _, _, clean_events) = runs
    assert [e["trigger_index"] for e in events] == list(range(6)), "one TrainingSetEvent per trigger, none twice"
    assert [e["num_samples"] for e in events] == [150, 300, 450, 600, 750, 900]  # 50% of all data so far
    for event, clean in zip(events, clean_events, strict=True):
        path = ArtifactStore.resolve(event["manifest_uri"])
        assert sha256_file(path) == event["manifest_sha256"] == clean["manifest_sha256"]
        assert path.read_bytes() == ArtifactStore.resolve(clean["manifest_uri"]).read_bytes()
        manifest = read_manifest(path)
        assert manifest.num_rows == event["num_samples"]
        rows = list(zip(manifest["kafka_partition"].to_pylist(), manifest["kafka_offset"].to_pylist(), strict=True))
        assert len(set(rows)) == len(rows)
        keys = manifest["key"].to_pylist()
        in_order = store.query("SELECT key FROM samples WHERE has({k:Array(String)}, key) ORDER BY event_time, key",
                               {"k": keys})  # fmt: skip
        assert [k for (k,) in in_order] == keys, "in the stream's (event_time, key) order"
    tables = store.query(
        "SELECT trigger_index, count(), uniqExact(kafka_partition, kafka_offset) FROM training_sets "
        "WHERE pipeline_id = {p:String} GROUP BY trigger_index ORDER BY trigger_index",
        {"p": pid},
    )
    assert tables == [(i, 150 * (i + 1), 150 * (i + 1)) for i in range(6)]
    # Without replacement: the first 1,050 draws are all different samples (2,000 were available by then).
    first = store.query("SELECT uniqExact(key) FROM training_sets WHERE pipeline_id = {p:String} AND trigger_index < 3",
                        {"p": pid})  # fmt: skip
    assert first == [(150 + 300 + 450,)]
    assert (
        read_manifest(ArtifactStore.resolve(events[0]["manifest_uri"]))["key"].to_pylist()
        == select(
            store,
            config.selection_strategy,
            pipeline_id=pid,
            dataset="sel",
            trigger_index=0,
            seed=config.training.seed or 0,
        ).key
    )


def test_bad_trigger_events_go_to_the_dead_letter_topic(kafka_settings, clickhouse_dsn, tmp_path):
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    names = TopicNames(kafka_settings.namespace)
    codec = EventCodec()
    unknown = {"pipeline_id": "nobody", "dataset": "d", "trigger_index": 0, "boundary_event_time": 1,
               "boundary_key": "k", "num_new_samples": 1, "reason": "r", "watermark": None,
               "ingest_offsets": {"0": 1}, "fired_at": 0}  # fmt: skip
    with SelectorService(kafka_settings, store, ArtifactStore(tmp_path)) as service:
        with EventProducer(kafka_settings) as producer:
            producer.produce(names.triggers, b"\xc3\x01garbage", key="x", partition=0)
            producer.produce(names.triggers, codec.encode("TriggerEvent", unknown), key="x", partition=0)
        committed = 0
        while committed < 2:
            committed += service.step()
        assert service.dead_letters == 2 and service.selected == 0
    reasons = [dict(m.headers())[HEADER_REASON].decode() for m in read_all(kafka_settings, names.dlq)]
    assert len(reasons) == 2
    assert reasons[0] == "truncated single-object header: 9 of 10 bytes"
    assert reasons[1] == "trigger nobody#0: pipeline nobody is not registered"
    assert read_all(kafka_settings, names.training_sets) == []
