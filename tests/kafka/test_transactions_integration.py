"""Kafka transactions on the real broker: visibility, exactly-once processing, abort and rewind, fencing."""

import time

import pytest
from confluent_kafka import TopicPartition

from modyn_stream.kafka.consumer import BatchConsumer, ShutdownFlag
from modyn_stream.kafka.exceptions import TransactionError
from modyn_stream.kafka.producer import EventProducer, OutgoingRecord
from modyn_stream.kafka.topics import TopicAdmin, TopicSpec
from modyn_stream.kafka.transactions import TransactionalProcessor

pytestmark = pytest.mark.integration


def read_all(settings, topic: str, partitions: int = 1, isolation: str = "read_committed") -> list[bytes]:
    """Everything in `topic` that a consumer with `isolation` can see, read up to the end offsets."""
    with BatchConsumer(settings, "reader", isolation_level=isolation) as consumer:
        parts = [TopicPartition(topic, p, 0) for p in range(partitions)]
        consumer.assign(parts)
        return [msg.value() for msg in consumer.read_to_end(parts, timeout_s=30)]


def test_committed_transaction_is_visible_and_aborted_one_is_not(kafka_settings):
    topic = f"{kafka_settings.namespace}.tx"
    TopicAdmin(kafka_settings).ensure([TopicSpec(topic, 1)])
    producer = EventProducer(kafka_settings, transactional_id=f"{kafka_settings.namespace}-tx")
    raw = producer.raw
    raw.init_transactions(30)
    raw.begin_transaction()
    producer.produce(topic, b"committed")
    raw.commit_transaction()
    raw.begin_transaction()
    producer.produce(topic, b"aborted")
    raw.flush()
    raw.abort_transaction()

    assert read_all(kafka_settings, topic) == [b"committed"]
    assert read_all(kafka_settings, topic, isolation="read_uncommitted") == [b"committed", b"aborted"]


def _setup(kafka_settings, inputs: int):
    source, sink = f"{kafka_settings.namespace}.in", f"{kafka_settings.namespace}.out"
    TopicAdmin(kafka_settings).ensure([TopicSpec(source, 2), TopicSpec(sink, 1)])
    with EventProducer(kafka_settings) as producer:
        for i in range(inputs):
            producer.produce(source, str(i).encode(), partition=i % 2)
    return source, sink


def _doubling(sink):
    def transform(messages):
        return [OutgoingRecord(sink, str(int(m.value()) * 2).encode()) for m in messages]

    return transform


def _processor(kafka_settings, source, transform, max_batch=25):
    return TransactionalProcessor(
        kafka_settings,
        group_id=f"{kafka_settings.namespace}-doubler",
        transactional_id=f"{kafka_settings.namespace}-doubler",
        input_topics=[source],
        transform=transform,
        max_batch=max_batch,
        poll_timeout_s=0.5,
    )


def _process_until(processor, total: int, timeout_s: float = 60) -> int:
    done, deadline = 0, time.monotonic() + timeout_s
    while done < total:
        assert time.monotonic() < deadline, f"processed {done} of {total}"
        done += processor.process_batch()
    return done


def test_processor_outputs_each_input_exactly_once_across_restarts(kafka_settings):
    source, sink = _setup(kafka_settings, 200)
    with _processor(kafka_settings, source, _doubling(sink)) as first:
        _process_until(first, 120)
    # A restarted instance continues from the committed offsets: nothing repeated, nothing skipped.
    with _processor(kafka_settings, source, _doubling(sink)) as second:
        processed = 0
        deadline = time.monotonic() + 30
        while len(read_all(kafka_settings, sink)) < 200 and time.monotonic() < deadline:
            processed += second.process_batch()
    outputs = sorted(int(v) for v in read_all(kafka_settings, sink))
    assert outputs == [2 * i for i in range(200)]


def test_failing_transform_aborts_and_rewinds_so_the_batch_is_redone(kafka_settings):
    source, sink = _setup(kafka_settings, 60)
    calls = {"n": 0}

    def flaky(messages):
        calls["n"] += 1
        for i, record in enumerate(_doubling(sink)(messages)):
            if calls["n"] == 2 and i == 3:
                # Three records of this batch are already in the transaction: they must never be visible.
                raise RuntimeError("transform failed half-way")
            yield record

    with _processor(kafka_settings, source, flaky, max_batch=10) as processor:
        processor.process_batch()
        with pytest.raises(RuntimeError, match="half-way"):
            processor.process_batch()
        _process_until(processor, 60 - 10)
    assert sorted(int(v) for v in read_all(kafka_settings, sink)) == [2 * i for i in range(60)]


def test_a_newer_instance_fences_the_older_one(kafka_settings):
    source, sink = _setup(kafka_settings, 20)
    old = _processor(kafka_settings, source, _doubling(sink), max_batch=5)
    old.start()
    new = _processor(kafka_settings, source, _doubling(sink), max_batch=5)
    new.start()  # same transactional id: the broker bumps the epoch and fences `old`
    with pytest.raises(TransactionError, match="doubler"):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            old.process_batch()
    old.close()
    _process_until(new, 20)
    new.close()
    assert sorted(int(v) for v in read_all(kafka_settings, sink)) == [2 * i for i in range(20)]


def test_run_stops_when_the_shutdown_flag_is_set(kafka_settings):
    source, sink = _setup(kafka_settings, 10)
    shutdown = ShutdownFlag()
    seen = []

    def transform(messages):
        seen.extend(messages)
        if len(seen) >= 10:
            shutdown.set()
        return _doubling(sink)(messages)

    with _processor(kafka_settings, source, transform) as processor:
        assert processor.run(shutdown) == 10
    assert len(read_all(kafka_settings, sink)) == 10
