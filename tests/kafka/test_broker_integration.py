"""Producer, consumer groups, topics and dead letters against a real Kafka broker."""

import os
import time
import uuid

import pytest
from confluent_kafka import TopicPartition

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.dlq import DeadLetterPublisher, dead_letter_headers
from modyn_stream.kafka.exceptions import BrokerUnavailableError, DeliveryError
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, TopicSpec, project_topic_specs, sample_topic_spec

pytestmark = pytest.mark.integration


def consume_until(consumer: BatchConsumer, count: int, timeout_s: float = 30.0) -> list:
    """Poll until `count` messages arrived (a condition, not a sleep); fail after the timeout."""
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        got += consumer.poll_batch(1000, 0.5)
    assert len(got) >= count, f"only {len(got)} of {count} messages within {timeout_s} s"
    return got


def test_topics_are_created_once_with_their_configs(kafka_settings):
    admin = TopicAdmin(kafka_settings)
    names = TopicNames(kafka_settings.namespace)
    specs = [*project_topic_specs(names, partitions=2), sample_topic_spec(names, "digits", 4)]
    assert sorted(admin.ensure(specs)) == sorted(s.name for s in specs)
    assert admin.ensure(specs) == []  # idempotent
    assert admin.partitions(names.samples("digits")) == [0, 1, 2, 3]
    assert admin.config(names.samples("digits"))["retention.ms"] == "-1"
    assert admin.config(names.ingest_progress)["cleanup.policy"] == "compact"
    listed = {t.name: t.partitions for t in admin.list(prefix=f"{kafka_settings.namespace}.")}
    assert listed[names.triggers] == 2 and len(listed) == len(specs)


def test_produce_and_consume_events_across_partitions(kafka_settings):
    topic = f"{kafka_settings.namespace}.samples.rt"
    TopicAdmin(kafka_settings).ensure([TopicSpec(topic, 3)])
    codec = EventCodec()
    with EventProducer(kafka_settings) as producer:
        for i in range(300):
            record = {"dataset": "rt", "key": f"k{i}", "event_time": i, "label": i % 3, "payload": bytes([i % 256])}
            producer.produce(topic, codec.encode("SampleEvent", record), key=f"k{i}")
    assert producer.delivered == 300
    with BatchConsumer(kafka_settings, "g-rt") as consumer:
        consumer.subscribe([topic])
        messages = consume_until(consumer, 300)
    records = [codec.decode(m.value()).record for m in messages]
    assert sorted(r["key"] for r in records) == sorted(f"k{i}" for i in range(300))
    assert {m.partition() for m in messages} == {0, 1, 2}
    # Same key, same partition: a sample's key decides where it lives.
    by_key = {m.key().decode(): m.partition() for m in messages}
    assert all(by_key[f"k{i}"] == by_key[f"k{i}"] for i in range(300))


def test_consumer_group_resumes_from_committed_offsets_and_shares_partitions(kafka_settings):
    topic = f"{kafka_settings.namespace}.work"
    TopicAdmin(kafka_settings).ensure([TopicSpec(topic, 2)])
    with EventProducer(kafka_settings) as producer:
        for i in range(100):
            producer.produce(topic, f"v{i}".encode(), partition=i % 2)

    with BatchConsumer(kafka_settings, "g-work") as first:
        first.subscribe([topic])
        batch = consume_until(first, 100)
        # Commit only what was processed: the first 30 of each partition.
        processed = [m for m in batch if m.offset() < 30]
        committed = first.commit(processed)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 30), (1, 30)]

    assigned: list[list[int]] = []
    one = BatchConsumer(kafka_settings, "g-work", on_assign=lambda c, ps: assigned.append([p.partition for p in ps]))
    two = BatchConsumer(kafka_settings, "g-work")
    one.subscribe([topic])
    two.subscribe([topic])
    got: list = []
    deadline = time.monotonic() + 60
    expected = {(p, o) for p in (0, 1) for o in range(30, 50)}
    # Until both members are in: one of them alone can read everything before the other joins.
    while ({(m.partition(), m.offset()) for m in got} != expected or not assigned) and time.monotonic() < deadline:
        got += one.poll_batch(100, 0.2) + two.poll_batch(100, 0.2)
    one.close()
    two.close()
    # The group resumes at the committed offsets: nothing before 30 again, everything after it. (A
    # member that loses a partition in the rebalance before committing lets the other re-read it.)
    seen = {(m.partition(), m.offset()) for m in got}
    missing, unexpected = sorted(expected - seen), sorted(seen - expected)
    assert seen == expected, f"missing {missing}, unexpected {unexpected}, assignments {assigned}"
    assert assigned, "the rebalance callback ran"


def test_delivery_errors_surface_on_flush_or_produce(kafka_settings):
    topic = f"{kafka_settings.namespace}.small"
    TopicAdmin(kafka_settings).ensure([TopicSpec(topic, 1, {"max.message.bytes": "1000"})])
    producer = EventProducer(kafka_settings)
    producer.produce(topic, b"x", partition=7)
    with pytest.raises(DeliveryError, match=r"1 message\(s\) failed delivery.*small\[7\]: .*[Uu]nknown partition"):
        producer.flush(10)
    producer.produce(topic, os.urandom(5000))  # incompressible, over the topic's max.message.bytes
    with pytest.raises(DeliveryError, match=r"small\[0\]: .*too large"):
        producer.flush(10)
    producer.produce(topic, b"ok")
    producer.flush(10)  # errors are reported once, then the producer is usable again


def test_unreachable_broker_is_reported_at_once():
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=r"Kafka at 127.0.0.1:1: no broker answered within 2 s"):
        TopicAdmin(settings, timeout_s=2).check_reachable()
    assert time.monotonic() - started < 10
    producer = EventProducer(settings, overrides={"message.timeout.ms": 1500})
    producer.produce("any", b"x")
    with pytest.raises(DeliveryError, match=r"failed delivery to 127\.0\.0\.1:1"):
        producer.flush(10)


def test_bad_events_go_to_the_dead_letter_topic_with_reasons(kafka_settings):
    names = TopicNames(kafka_settings.namespace)
    source = names.samples("dl")
    TopicAdmin(kafka_settings).ensure([TopicSpec(source, 1), TopicSpec(names.dlq, 1)])
    codec = EventCodec()
    good = codec.encode("SampleEvent", {"dataset": "dl", "key": "a", "event_time": 1, "payload": b"p"})
    with EventProducer(kafka_settings) as producer:
        producer.produce(source, b"\xde\xad\xbe\xef", key="bad", headers=[("origin", b"test")])
        producer.produce(source, good, key="a")

    decoded, dlq_producer = [], EventProducer(kafka_settings)
    dead_letters = DeadLetterPublisher(dlq_producer, names.dlq, limit_bytes=1 << 20)
    with BatchConsumer(kafka_settings, f"g-{uuid.uuid4().hex[:6]}") as consumer:
        consumer.subscribe([source])
        for msg in consume_until(consumer, 2):
            try:
                decoded.append(codec.decode(msg.value()))
            except EventDecodeError as exc:
                dead_letters.publish(msg, str(exc), stage="test-ingest")
        dlq_producer.flush()
    assert [e.record["key"] for e in decoded] == ["a"] and dead_letters.published == 1

    with BatchConsumer(kafka_settings, f"g-{uuid.uuid4().hex[:6]}") as reader:
        reader.assign([TopicPartition(names.dlq, 0, 0)])
        (letter,) = consume_until(reader, 1)
    assert letter.value() == b"\xde\xad\xbe\xef" and letter.key() == b"bad"
    headers = dead_letter_headers(letter.headers())
    assert headers["dlq.reason"].startswith("unknown framing")
    assert headers["dlq.source.topic"] == source and headers["dlq.source.offset"] == "0"
    assert headers["dlq.stage"] == "test-ingest"
    assert ("origin", b"test") in letter.headers()
