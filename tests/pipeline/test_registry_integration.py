import uuid

import pytest
from confluent_kafka import TopicPartition

from modyn_stream.events import EventCodec
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.loading import load_pipeline, pipeline_id
from modyn_stream.pipeline.registry import register_pipeline
from tests.pipeline.test_config import DIGITS

pytestmark = pytest.mark.integration


def test_registration_writes_clickhouse_and_announces_on_kafka(kafka_settings, clickhouse_dsn):
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    config = load_pipeline(DIGITS)
    pid = register_pipeline(config, kafka_settings, store)
    assert pid == pipeline_id(config)[0]
    assert register_pipeline(config, kafka_settings, store) == pid  # idempotent id
    rows = store.query("SELECT pipeline_id, name, status, config_sha256 FROM pipelines FINAL")
    assert rows == [(pid, config.pipeline.name, "REGISTERED", pipeline_id(config)[2])]

    with BatchConsumer(kafka_settings, "pipelines-reader") as consumer:
        consumer.assign([TopicPartition(TopicNames(kafka_settings.namespace).pipelines, 0, 0)])
        messages = []
        while len(messages) < 2:
            messages += consumer.poll_batch(10, 0.5)
    events = [EventCodec().decode(m.value()).record for m in messages]
    assert {m.key().decode() for m in messages} == {pid}
    assert events[0]["status"] == "REGISTERED" and events[0]["config_json"] == pipeline_id(config)[1]
