"""Fetching payloads by (partition, offset) from a real broker: order, cache, checks, no idle fetching."""

import numpy as np
import pytest

from modyn_stream.kafka.topics import TopicNames
from modyn_stream.replay.publisher import TimestampPolicy, partition_of, replay
from modyn_stream.replay.sources import SampleSource
from modyn_stream.training.exceptions import PayloadError
from modyn_stream.training.fetch import PayloadFetcher

pytestmark = pytest.mark.integration


@pytest.fixture
def published(kafka_settings):
    """200 samples over 2 partitions; (partition, offset) -> (key, payload) as the log holds them."""
    n = 200
    payloads = [f"payload-{i}".encode() for i in range(n)]
    source = SampleSource(payloads, np.arange(n) % 10, None, np.zeros(n, dtype=np.int64), "text/plain")
    replay(kafka_settings, "fetch", source, TimestampPolicy("increasing"), partitions=2)
    where, next_offset = {}, {0: 0, 1: 0}
    for i in range(n):  # one timestamp step per sample: published in index order
        key = f"{i:010d}"
        partition = partition_of(key, 2)
        where[(partition, next_offset[partition])] = (key, payloads[i])
        next_offset[partition] += 1
    return where


def test_payloads_come_in_the_order_asked_and_are_read_once(kafka_settings, published):
    wanted = [(1, 7), (0, 3), (0, 90), (1, 8), (0, 4)]
    with_keys = [(p, o, published[(p, o)][0]) for p, o in wanted]
    fetcher = PayloadFetcher(kafka_settings, TopicNames(kafka_settings.namespace).samples("fetch"))
    try:
        first = fetcher.fetch(*zip(*with_keys, strict=True))
        assert first == [published[w][1] for w in wanted]
        assert fetcher.stats.from_kafka == 5 and fetcher.stats.from_cache == 0
        assert fetcher.fetch(*zip(*with_keys, strict=True)) == first
        assert fetcher.stats.from_kafka == 5 and fetcher.stats.from_cache == 5
        # Between fetches the consumer holds no partition: an assigned one would keep fetching.
        assert fetcher._consumer.assignment() == []
    finally:
        fetcher.close()


def test_a_key_the_log_does_not_hold_there_fails_loudly(kafka_settings, published):
    fetcher = PayloadFetcher(kafka_settings, TopicNames(kafka_settings.namespace).samples("fetch"))
    try:
        with pytest.raises(PayloadError, match=r"\[0\]@3: holds key '\d+', the manifest says 'someone-else'"):
            fetcher.fetch([0], [3], ["someone-else"])
        assert fetcher._consumer.assignment() == [], "a failed fetch leaves nothing assigned either"
    finally:
        fetcher.close()
