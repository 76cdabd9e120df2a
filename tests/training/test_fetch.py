"""The payload cache: bounded in payload bytes, least recently used first out."""

from modyn_stream.training.fetch import PayloadCache


def test_payload_cache_evicts_the_least_recently_used_past_its_budget():
    cache = PayloadCache(max_bytes=10)
    cache.put((0, 1), ("a", b"aaaa"))
    cache.put((0, 2), ("b", b"bbbb"))
    assert cache.get((0, 1)) == ("a", b"aaaa")  # now the most recently used
    cache.put((0, 3), ("c", b"cccc"))
    assert cache.get((0, 2)) is None and cache.get((0, 1)) == ("a", b"aaaa") and cache.bytes == 8


def test_a_payload_larger_than_the_whole_budget_is_not_kept():
    cache = PayloadCache(max_bytes=3)
    cache.put((0, 1), ("a", b"aaaa"))
    assert cache.get((0, 1)) is None and cache.bytes == 0
