"""Following the ingest-progress topic on a real broker: every record before a refresh, no idle fetching."""

import uuid

import pytest

from modyn_stream.events import EventCodec
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, project_topic_specs
from modyn_stream.triggers.progress import ProgressTracker

pytestmark = pytest.mark.integration


def publish(producer: EventProducer, names: TopicNames, codec: EventCodec, partition: int, next_offset: int) -> None:
    """A progress record as the ingest writes it (keyed by partition: the topic is compacted)."""
    record = {"dataset": "d", "topic": "ns.samples.d", "partition": partition, "next_offset": next_offset,
              "max_event_time": next_offset * 10, "samples_ingested": next_offset, "end_of_stream": False,
              "updated_at": 0}  # fmt: skip
    encoded = codec.encode("IngestProgress", record)
    producer.produce(names.ingest_progress, encoded, key=f"ns.samples.d:{partition}")


def test_a_refresh_sees_every_record_written_before_it_and_leaves_nothing_assigned(kafka_settings):
    names = TopicNames(kafka_settings.namespace)
    TopicAdmin(kafka_settings).ensure(project_topic_specs(names))
    codec = EventCodec()
    tracker = ProgressTracker(kafka_settings, codec, f"{kafka_settings.namespace}.progress-{uuid.uuid4().hex[:6]}")
    try:
        with EventProducer(kafka_settings) as producer:
            for partition, offset in [(0, 5), (1, 3), (0, 9)]:
                publish(producer, names, codec, partition, offset)
            producer.flush()
            tracker.refresh()
            assert {key: p.next_offset for key, p in tracker.latest.items()} == {
                ("ns.samples.d", 0): 9,
                ("ns.samples.d", 1): 3,
            }
            # Unassigned between refreshes (an assigned reader polls the broker every 10 ms), yet the
            # next refresh goes on from where this one stopped.
            assert tracker._consumer.raw.assignment() == []
            publish(producer, names, codec, 1, 8)
            producer.flush()
        tracker.refresh()
        assert tracker.latest[("ns.samples.d", 1)].next_offset == 8
        assert tracker.latest[("ns.samples.d", 0)].next_offset == 9
    finally:
        tracker.close()
