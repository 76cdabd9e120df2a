"""Fetching payloads by (partition, offset) from a real broker: order, cache, checks, chunk after chunk
without reassigning, no idle fetching once released."""

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
        # Released (the set is read), the consumer holds no partition: an assigned one would keep fetching.
        fetcher.release()
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


def test_chunks_in_stream_order_are_read_without_reassigning_and_read_ahead_serves_the_next_chunks(
    kafka_settings, published
):
    in_order = sorted(published)  # (partition, offset): partition 0, then 1
    fetcher = PayloadFetcher(kafka_settings, TopicNames(kafka_settings.namespace).samples("fetch"),
                             read_ahead_bytes=2000)  # fmt: skip
    try:
        for start in range(0, len(in_order), 20):
            chunk = in_order[start : start + 20]
            keys = [published[w][0] for w in chunk]
            assert fetcher.fetch(*zip(*chunk, strict=True), keys) == [published[w][1] for w in chunk]
        assert fetcher.stats.moves == 2, "one assignment per partition for the whole set"
        assert fetcher.stats.read_ahead > 0, "later chunks were served records read ahead"
        assert fetcher.stats.from_kafka == len(in_order) and fetcher.stats.from_cache == 0, "each read once"
    finally:
        fetcher.release()
        fetcher.close()


def test_jumps_back_and_far_ahead_move_the_partition_and_a_missing_offset_fails_loudly(kafka_settings, published):
    topic = TopicNames(kafka_settings.namespace).samples("fetch")
    fetcher = PayloadFetcher(kafka_settings, topic, max_gap=5, cache_bytes=0)  # no cache: every payload is read
    try:
        for wanted in ([(0, 20), (0, 80)], [(0, 10)], [(0, 5)]):
            keys = [published[w][0] for w in wanted]
            assert fetcher.fetch(*zip(*wanted, strict=True), keys) == [published[w][1] for w in wanted]
        assert fetcher.stats.moves == 4, "to 20, ahead to 80 (past max_gap), back to 10, back to 5"
        assert fetcher.stats.from_kafka == 4
        with pytest.raises(PayloadError, match=r"\[1\]: offset 10000 missing: the partition ends at \d+"):
            fetcher.fetch([1], [10_000], ["nobody"])
        assert fetcher._consumer.assignment() == [], "a failed fetch releases its partitions"
    finally:
        fetcher.close()


def test_a_cached_payload_is_checked_against_the_manifest_key_too(kafka_settings, published):
    fetcher = PayloadFetcher(kafka_settings, TopicNames(kafka_settings.namespace).samples("fetch"))
    try:
        fetcher.fetch([0], [3], [published[(0, 3)][0]])
        with pytest.raises(PayloadError, match=r"\[0\]@3: holds key '\d+', the manifest says 'someone-else'"):
            fetcher.fetch([0], [3], ["someone-else"])
    finally:
        fetcher.close()


def test_a_partition_paused_in_one_set_is_read_again_in_the_next(kafka_settings, published):
    topic = TopicNames(kafka_settings.namespace).samples("fetch")
    fetcher = PayloadFetcher(kafka_settings, topic, cache_bytes=0, read_ahead_bytes=1, timeout_s=5)
    try:
        wanted = [(0, 1), (1, 1)]
        keys = [published[w][0] for w in wanted]
        for _ in range(2):  # each partition reads ahead, is paused, and the set ends
            assert fetcher.fetch(*zip(*wanted, strict=True), keys) == [published[w][1] for w in wanted]
            assert fetcher._paused == {0, 1}
            fetcher.release()
    finally:
        fetcher.close()
