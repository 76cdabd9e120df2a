"""The ingest service on a real broker and the real ClickHouse engine: exactly once, through crashes."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from modyn_stream.events import EventCodec
from modyn_stream.ingest.service import IngestService
from modyn_stream.ingest.watermark import END_OF_TIME, PartitionProgress, global_watermark
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.dlq import dead_letter_headers
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import KEEP_FOREVER, SAMPLE_MAX_MESSAGE_BYTES, TopicAdmin, TopicNames, TopicSpec
from modyn_stream.metadata import MetadataStore
from modyn_stream.replay.publisher import TimestampPolicy, replay
from modyn_stream.replay.sources import SampleSource
from tests.kafka.test_transactions_integration import read_all

pytestmark = pytest.mark.integration


def make_source(n: int, seed: int = 0) -> SampleSource:
    rng = np.random.default_rng(seed)
    payloads = [rng.integers(0, 256, size=int(rng.integers(1, 40)), dtype=np.uint8).tobytes() for _ in range(n)]
    return SampleSource(payloads, rng.integers(0, 10, n), None, np.zeros(n, dtype=np.int64), "application/octet-stream")


def expected_rows(source: SampleSource, times: np.ndarray) -> list[tuple]:
    return sorted(
        (f"{i:010d}", int(times[i]), int(source.labels[i]), len(source.payloads[i])) for i in range(len(source))
    )


def stored_rows(store: MetadataStore, dataset: str) -> list[tuple]:
    rows = store.query(
        "SELECT key, toUnixTimestamp64Milli(event_time), label, payload_size FROM samples "
        "WHERE dataset = {d:String} ORDER BY key",
        {"d": dataset},
    )
    return [tuple(r) for r in rows]


def ingest_until(service: IngestService, store: MetadataStore, dataset: str, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while store.query("SELECT count() FROM samples WHERE dataset = {d:String}", {"d": dataset})[0][0] < n:
        assert time.monotonic() < deadline, "ingest did not catch up"
        service.step()


@pytest.fixture
def store(clickhouse_dsn):
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    store.migrate()
    return store


def test_replayed_samples_land_exactly_once_with_their_metadata(kafka_settings, store):
    source = make_source(3000)
    policy = TimestampPolicy("random", step_ms=10, seed=3)
    result = replay(kafka_settings, "digits", source, policy, partitions=3)
    assert result.published == 3000 and len(result.per_partition) == 3
    with IngestService(kafka_settings, store, max_batch=700, max_wait_s=0.2) as service:
        ingest_until(service, store, "digits", 3000)
        for _ in range(5):
            service.step()  # nothing more arrives: no duplicates from extra polls
        states = service.partition_states()
    assert stored_rows(store, "digits") == expected_rows(source, policy.assign(source))
    assert store.query("SELECT count(), uniqExact(topic, kafka_partition, kafka_offset) FROM samples") == [(3000, 3000)]
    assert all(s.end_of_stream for s in states) and sum(s.samples_ingested for s in states) == 3000

    # The progress topic tells every partition's end: the global watermark is the end of time.
    names = TopicNames(kafka_settings.namespace)
    codec = EventCodec()
    progress = [
        PartitionProgress.from_event(codec.decode(v).record) for v in read_all(kafka_settings, names.ingest_progress)
    ]
    partitions = {(result.topic, p) for p in result.per_partition}
    assert global_watermark(progress, partitions, now_ms=0, idle_timeout_ms=None) == END_OF_TIME


class Crash(Exception):
    pass


@pytest.mark.parametrize("point", ["before_insert", "after_insert", "before_commit"])
def test_crash_at_any_point_neither_loses_nor_doubles_rows(kafka_settings, store, point):
    source = make_source(2000, seed=1)
    policy = TimestampPolicy("increasing")
    replay(kafka_settings, "crashy", source, policy, partitions=2)
    crashes = {"left": 3}

    def fault(where: str) -> None:
        if where == point and crashes["left"] > 0:
            crashes["left"] -= 1
            raise Crash(where)

    batch_sizes = iter([300, 170, 230, 410])
    while True:
        # Each instance crashes at `point` on its first batch, never committing it; the next resumes.
        # Batch sizes differ between instances, so insert tokens differ: only the resume rule protects.
        service = IngestService(kafka_settings, store, max_batch=next(batch_sizes), max_wait_s=0.1, fault=fault)
        try:
            ingest_until(service, store, "crashy", 2000)
            break
        except Crash:
            pass
        finally:
            service.close()
    assert crashes["left"] == 0
    assert stored_rows(store, "crashy") == expected_rows(source, policy.assign(source))
    assert read_all(kafka_settings, TopicNames(kafka_settings.namespace).dlq) == []  # no sample taken for its twin


def test_garbage_and_wrong_events_go_to_the_dlq_and_nothing_else_is_lost(kafka_settings, store):
    names = TopicNames(kafka_settings.namespace)
    replay(kafka_settings, "mixed", make_source(100), TimestampPolicy(), partitions=1)
    codec = EventCodec()
    topic = names.samples("mixed")
    trigger = {"pipeline_id": "p", "dataset": "mixed", "trigger_index": 0, "boundary_event_time": 1,
               "boundary_key": "k", "num_new_samples": 1, "reason": "r", "fired_at": 1}  # fmt: skip
    other_dataset = {"dataset": "other", "key": "x", "event_time": 1, "payload": b"p"}
    bad = {
        b"\x00garbage": "Confluent wire format",
        codec.encode("TriggerEvent", trigger): "a TriggerEvent does not belong",
        codec.encode("SampleEvent", other_dataset): "does not match",
        codec.encode("SampleEvent", {"dataset": "mixed", "key": "y", "event_time": 1}): "neither payload",
    }
    with EventProducer(kafka_settings) as producer:
        for value in bad:
            producer.produce(topic, value, key="bad")
        producer.produce(topic, codec.encode("SampleEvent", {"dataset": "mixed", "key": "late", "event_time": 2,
                                                              "payload": b"ok"}))  # fmt: skip
    with IngestService(kafka_settings, store, max_batch=50, max_wait_s=0.1) as service:
        ingest_until(service, store, "mixed", 101)
        deadline = time.monotonic() + 30
        while service.stats.dead_letters < len(bad):
            assert time.monotonic() < deadline
            service.step()
    assert store.query("SELECT count() FROM samples") == [(101,)]
    with BatchConsumer(kafka_settings, "dlq-reader") as consumer:
        consumer.assign([TopicPartition(names.dlq, 0, 0)])
        letters = []
        while len(letters) < len(bad):
            letters += consumer.poll_batch(100, 0.5)
    reasons = {m.value(): dead_letter_headers(m.headers()) for m in letters}
    assert set(reasons) == set(bad)
    for value, expected in bad.items():
        assert expected in reasons[value]["dlq.reason"] and reasons[value]["dlq.stage"] == "ingest"
        assert reasons[value]["dlq.source.topic"] == topic


def _dead_letters(settings, count: int) -> list:
    with BatchConsumer(settings, "dlq-reader") as consumer:
        consumer.assign([TopicPartition(TopicNames(settings.namespace).dlq, 0, 0)])
        letters, deadline = [], time.monotonic() + 30
        while len(letters) < count:
            assert time.monotonic() < deadline, f"{len(letters)} of {count} dead letters"
            letters += consumer.poll_batch(100, 0.5)
    return letters


def test_an_event_as_large_as_the_samples_topic_allows_is_a_dead_letter_and_nothing_else_stops(kafka_settings, store):
    # The broker takes a record up to the samples topic's max.message.bytes; its dead letter carries headers on
    # top, and the DLQ is made larger by as much, so it fits whole. Before, the ingest died on it forever.
    names = TopicNames(kafka_settings.namespace)
    replay(kafka_settings, "big", make_source(50), TimestampPolicy(), partitions=1)
    poison = os.urandom(SAMPLE_MAX_MESSAGE_BYTES - 150)  # what the broker still takes, with batch framing
    with EventProducer(kafka_settings, overrides={"compression.type": "none"}) as producer:
        producer.produce(names.samples("big"), poison, key="poison")
        producer.produce(names.samples("big"), EventCodec().encode(
            "SampleEvent", {"dataset": "big", "key": "after", "event_time": 5, "payload": b"ok"}))  # fmt: skip
    with IngestService(kafka_settings, store, max_batch=20, max_wait_s=0.1) as service:
        ingest_until(service, store, "big", 51)
    (letter,) = _dead_letters(kafka_settings, 1)
    assert letter.value() == poison and "dlq.original.size" not in dead_letter_headers(letter.headers())


def test_a_dead_letter_too_large_for_the_dlq_is_truncated_with_its_size_and_checksum(kafka_settings, store):
    names = TopicNames(kafka_settings.namespace)
    admin = TopicAdmin(kafka_settings)
    # Topics made by someone else: a samples topic that takes larger records than the DLQ does.
    admin.ensure([TopicSpec(names.dlq, 1, {**KEEP_FOREVER, "max.message.bytes": "20000"}),
                  TopicSpec(names.samples("wide"), 1, {**KEEP_FOREVER, "max.message.bytes": "200000"})])  # fmt: skip
    poison = os.urandom(150_000)
    with EventProducer(kafka_settings) as producer:
        producer.produce(names.samples("wide"), poison, key="poison", headers=[("origin", b"elsewhere")])
    replay(kafka_settings, "wide", make_source(30), TimestampPolicy(), partitions=1)
    with IngestService(kafka_settings, store, max_batch=10, max_wait_s=0.1) as service:
        ingest_until(service, store, "wide", 30)
    (letter,) = _dead_letters(kafka_settings, 1)
    headers = dead_letter_headers(letter.headers())
    assert len(letter.value()) < 20_000 and poison.startswith(letter.value())
    assert headers["dlq.original.size"] == "150000"
    assert headers["dlq.original.sha256"] == hashlib.sha256(poison).hexdigest()
    assert (headers["dlq.source.topic"], headers["dlq.source.offset"]) == (names.samples("wide"), "0")
    assert ("origin", b"elsewhere") in letter.headers()


def test_a_key_already_ingested_is_a_dead_letter_naming_the_sample_that_holds_it(kafka_settings, store):
    names = TopicNames(kafka_settings.namespace)
    source = make_source(500, seed=4)
    policy = TimestampPolicy("increasing")
    replay(kafka_settings, "twice", source, policy, partitions=2)
    with IngestService(kafka_settings, store, max_batch=200, max_wait_s=0.1) as service:
        ingest_until(service, store, "twice", 500)
        # The same replay again (a producer retrying by hand), and one key twice within one batch.
        replay(kafka_settings, "twice", source, policy, partitions=2)
        codec = EventCodec()
        with EventProducer(kafka_settings) as producer:
            for i in range(2):
                sample = {"dataset": "twice", "key": "new", "event_time": 10**9 + i, "payload": b"p"}
                producer.produce(names.samples("twice"), codec.encode("SampleEvent", sample), key="new", partition=0)
        deadline = time.monotonic() + 60
        while service.stats.dead_letters < 501:
            assert time.monotonic() < deadline, f"{service.stats.dead_letters} dead letters"
            service.step()
    assert stored_rows(store, "twice") == sorted([*expected_rows(source, policy.assign(source)),
                                                  ("new", 10**9, None, 1)])  # fmt: skip
    letters = [dead_letter_headers(m.headers()) for m in _dead_letters(kafka_settings, 501)]
    reasons = {letter["dlq.reason"] for letter in letters}
    assert all(r.startswith("duplicate key ") and " in dataset 'twice': the sample at " in r for r in reasons)
    new = [letter for letter in letters if letter["dlq.reason"].startswith("duplicate key 'new'")]
    assert len(new) == 1 and new[0]["dlq.reason"].endswith(f"{names.samples('twice')}[0]@" + str(
        int(new[0]["dlq.source.offset"]) - 1) + " holds it")  # fmt: skip


CHECK_ROWS = """
import json, sys
from modyn_stream.metadata import MetadataStore
store = MetadataStore(sys.argv[1], "killtest")
rows = store.query("SELECT key, toUnixTimestamp64Milli(event_time), label, payload_size FROM samples ORDER BY key")
print(json.dumps([list(r) for r in rows]))
"""


def test_sigkill_at_random_moments_then_restart_gives_the_same_rows(kafka_settings, tmp_path):
    # A real process killed with SIGKILL; it owns its own chDB directory (one per process).
    source = make_source(20_000, seed=7)
    policy = TimestampPolicy("increasing", step_ms=5)
    replay(kafka_settings, "killed", source, policy, partitions=3)
    url = f"chdb://{tmp_path / 'ch'}"
    env = {**os.environ, "MODYN_KAFKA_BOOTSTRAP": kafka_settings.bootstrap_servers}
    command = [sys.executable, "-m", "modyn_stream", "service", "ingest", "--metadata-url", url,
               "--database", "killtest", "--namespace", kafka_settings.namespace, "--max-batch", "1500",
               "--max-wait", "0.05"]  # fmt: skip
    rng = random.Random(11)
    for _ in range(4):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.5, 5.0))  # a random moment to kill at, not a synchronisation
        process.send_signal(signal.SIGKILL)
        process.wait()
    final = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    expected = [list(r) for r in expected_rows(source, policy.assign(source))]
    deadline = time.monotonic() + 120
    try:
        while True:
            # Count through the live service's own log of progress: the topic's committed lag reaching zero.
            committed = _committed(kafka_settings, f"{kafka_settings.namespace}.ingest", "killed", 3)
            if committed == 20_000 + 3:  # samples + one end-of-stream marker per partition
                break
            assert time.monotonic() < deadline, f"committed {committed}"
            assert final.poll() is None, final.stderr.read()
            time.sleep(0.5)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(timeout=60)
    rows = subprocess.run([sys.executable, "-c", CHECK_ROWS, url], capture_output=True, text=True, check=True)
    assert json.loads(rows.stdout) == expected


def _committed(settings, group: str, dataset: str, partitions: int) -> int:
    topic = TopicNames(settings.namespace).samples(dataset)
    with BatchConsumer(settings, group) as consumer:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)])
    return sum(max(tp.offset, 0) for tp in offsets)


def test_older_schema_events_take_the_decoding_path_and_give_the_same_rows(kafka_settings, store):
    from modyn_stream.events import AvroSchema, SchemaSet
    from tests.events.test_codec import _older_sample_schema

    old_schema = AvroSchema.from_json(_older_sample_schema())
    schemas = SchemaSet.load()
    schemas.add_writer(old_schema)
    old_writer, current = EventCodec(schemas=SchemaSet([old_schema])), EventCodec()
    topic = TopicNames(kafka_settings.namespace).samples("evolve")
    replay(kafka_settings, "evolve", make_source(1), TimestampPolicy(), partitions=1)  # creates the topic
    with EventProducer(kafka_settings) as producer:
        for i in range(200):
            codec = old_writer if i % 2 else current
            record = {"dataset": "evolve", "key": f"e{i:03d}", "event_time": 1000 + i, "label": i, "payload": b"xy"}
            producer.produce(topic, codec.encode("SampleEvent", record), partition=0)
    with IngestService(kafka_settings, store, codec=EventCodec(schemas=schemas), max_batch=64) as service:
        ingest_until(service, store, "evolve", 201)
    rows = store.query("SELECT key, toUnixTimestamp64Milli(event_time), label, payload_size FROM samples "
                       "WHERE key LIKE 'e%' ORDER BY key")  # fmt: skip
    assert [tuple(r) for r in rows] == [(f"e{i:03d}", 1000 + i, i, 2) for i in range(200)]


def test_closing_while_the_group_hands_out_partitions_raises_nothing(kafka_settings, store):
    """The coordinator may complete the group's assignment before the service polls again; close()
    then delivers it, and taking it up there would fail on a consumer being torn down."""
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    replay(kafka_settings, "closing", make_source(10), TimestampPolicy("increasing"), partitions=2)
    service = IngestService(kafka_settings, store, max_wait_s=0.01)
    group = f"{kafka_settings.namespace}.ingest"
    admin = AdminClient(kafka_settings.client_config())
    deadline = time.monotonic() + 30
    service.step()  # sends the join; the assignment arrives with a later poll
    while True:
        try:
            description = admin.describe_consumer_groups([group])[group].result()
        except KafkaException as exc:  # a new group's coordinator may not be known or loaded yet
            settling = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS}
            assert exc.args[0].code() in settling and time.monotonic() < deadline, exc
            continue
        if description.state == ConsumerGroupState.STABLE and description.members[0].assignment.topic_partitions:
            break
        assert time.monotonic() < deadline, f"the group did not settle: {description.state}"
    assert service.partition_states() == [], "not yet taken up by the service"
    service.close()
