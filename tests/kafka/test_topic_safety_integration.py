"""No topic is created by accident, and no existing topic is kept when it would delete the dataset.

The first test runs its own broker configured as brokers are by default (`auto.create.topics.enable=true`),
so that it fails whenever one of our clients asks the broker to create a topic as a side effect.
"""

import re
import uuid

import numpy as np
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.exceptions import DeliveryError, TopicError
from modyn_stream.kafka.local import LocalKafka
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import KEEP_FOREVER, TopicAdmin, TopicNames, TopicSpec, sample_topic_spec
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.loading import load_pipeline
from modyn_stream.pipeline.registry import register_pipeline
from modyn_stream.replay.publisher import TimestampPolicy, replay
from modyn_stream.replay.sources import SampleSource
from modyn_stream.triggers.service import TriggerService
from tests.kafka.test_transactions_integration import read_all

pytestmark = pytest.mark.integration
EXAMPLE = "examples/digits_data_amount.yaml"


@pytest.fixture(scope="module")
def permissive_broker(tmp_path_factory):
    broker = LocalKafka(tmp_path_factory.mktemp("permissive-kafka"), properties={"auto.create.topics.enable": "true"})
    try:
        yield broker.start()
    finally:
        broker.stop()


def test_no_client_of_ours_creates_a_topic_as_a_side_effect(permissive_broker, clickhouse_dsn):
    settings = KafkaSettings(bootstrap_servers=permissive_broker, namespace=f"t{uuid.uuid4().hex[:10]}")
    names = TopicNames(settings.namespace)
    admin = TopicAdmin(settings)
    missing = names.samples("digits")

    with pytest.raises(TopicError, match=re.escape(f"topic {missing}")):
        admin.partitions(missing)
    with BatchConsumer(settings, f"{settings.namespace}.g") as consumer:
        consumer.subscribe([missing])
        consumer.poll_batch(10, 1.0)
        consumer.assign([TopicPartition(missing, 0, 0)])
        consumer.poll_batch(10, 1.0)
    producer = EventProducer(settings, overrides={"message.timeout.ms": 3000})
    producer.produce(missing, b"x")
    with pytest.raises(DeliveryError):
        producer.flush(10)

    # The trigger service looks up the samples topic of a registered pipeline whose data has not arrived.
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    store.migrate()
    config = load_pipeline(EXAMPLE)
    register_pipeline(config, settings, store, EventProducer(settings))
    with TriggerService(settings, store) as service:
        assert service.step() == 0
        assert not service.stream_ended(config.data.dataset_id)

    topics = {t.name for t in admin.list(prefix=f"{settings.namespace}.")}
    assert missing not in topics and names.samples(config.data.dataset_id) not in topics
    assert names.triggers in topics  # the services' own topics are created, on purpose


def test_the_local_broker_never_creates_topics_by_itself(tmp_path):
    broker = LocalKafka(tmp_path / "kafka")
    bootstrap = broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        resource = ConfigResource(ConfigResource.Type.BROKER, "1")
        config = admin.describe_configs([resource])[resource].result(timeout=30)
        assert config["auto.create.topics.enable"].value == "false"
    finally:
        broker.stop()


def _source(n: int) -> SampleSource:
    return SampleSource(
        [b"p"] * n, np.zeros(n, dtype=np.int64), None, np.zeros(n, dtype=np.int64), "application/octet-stream"
    )


def test_a_samples_topic_that_would_delete_data_is_refused_with_one_line(kafka_settings):
    names = TopicNames(kafka_settings.namespace)
    topic = names.samples("week")
    admin = TopicAdmin(kafka_settings)
    admin.ensure([TopicSpec(topic, 1, {"retention.ms": "604800000"})])  # what broker defaults would make

    with pytest.raises(TopicError) as refused:
        admin.ensure([sample_topic_spec(names, "week", 4)])
    message = str(refused.value)
    assert "\n" not in message and f"topic {topic} exists with retention.ms=604800000" in message
    assert "retention.ms=-1" in message  # says how to keep the data
    with pytest.raises(TopicError, match=r"retention\.ms=604800000"):
        replay(kafka_settings, "week", _source(5), TimestampPolicy())
    assert read_all(kafka_settings, topic) == []  # nothing published into it

    compacted = names.samples("compacted")
    admin.ensure([TopicSpec(compacted, 1, {**KEEP_FOREVER, "cleanup.policy": "compact"})])
    with pytest.raises(TopicError, match=r"cleanup\.policy=compact"):
        admin.ensure([sample_topic_spec(names, "compacted", 1)])


def test_a_replay_into_an_existing_topic_with_other_partitions_says_so(kafka_settings):
    names = TopicNames(kafka_settings.namespace)
    TopicAdmin(kafka_settings).ensure([sample_topic_spec(names, "two", 2)])
    result = replay(kafka_settings, "two", _source(10), TimestampPolicy(), partitions=4)
    assert sorted(result.per_partition) == [0, 1] and result.published == 10
    assert result.notes == (f"{names.samples('two')} exists with 2 partition(s): replaying into those, not 4",)
    assert replay(kafka_settings, "fresh", _source(3), TimestampPolicy(), partitions=3).notes == ()
