"""Fetching sample payloads from the sample topic by (partition, offset), with a bounded cache.

The wanted offsets of each partition (a chunk of the manifest, sorted) form runs: samples of one stretch of
event time sit close together in each partition of an in-order stream. A run is read sequentially from its
first offset (gaps up to `max_gap` are read through rather than
seeking). Payloads are kept in an LRU cache bounded in bytes, so data reused by later triggers
(all-data or sliding-window selections) is not read from Kafka again. Every record read is checked
against the manifest's key: a manifest and a topic that disagree fail loudly, never silently.
A record missing from the log is a PayloadError (the training set cannot be used); a broker that does
not answer is a transient KafkaLayerError (the same fetch succeeds once it is back).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.exceptions import KafkaLayerError
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.training.exceptions import PayloadError


class PayloadCache:
    """(partition, offset) -> payload bytes, least recently used evicted past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[int, int], bytes] = OrderedDict()

    def get(self, key: tuple[int, int]) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[int, int], value: bytes) -> None:
        if len(value) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        self.bytes += len(value) - (len(old) if old is not None else 0)
        self._items[key] = value
        while self.bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.bytes -= len(evicted)


@dataclass
class FetchStats:
    from_kafka: int = 0
    from_cache: int = 0
    read_through: int = 0  # records read only to cross a gap in a run


class PayloadFetcher:
    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        codec: EventCodec | None = None,
        cache_bytes: int = 512 << 20,
        max_gap: int = 256,
        timeout_s: float = 30.0,
    ) -> None:
        self.topic = topic
        self.codec = codec or EventCodec.for_settings(settings)
        self.cache = PayloadCache(cache_bytes)
        self.max_gap = max_gap
        self.timeout_s = timeout_s
        self.stats = FetchStats()
        self._consumer = Consumer({
            **settings.client_config(), "group.id": f"{settings.namespace}.fetch-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "enable.partition.eof": True, "isolation.level": "read_committed",
            "max.partition.fetch.bytes": 8 << 20,  # sequential runs: fewer, larger fetches
            # The records are already in the log: no long polls, which would delay the fetch of
            # the next run by up to fetch.wait.max.ms after every reassignment.
            "fetch.wait.max.ms": 10,
        })  # fmt: skip

    def fetch(self, partitions: Sequence[int], offsets: Sequence[int], keys: Sequence[str]) -> list[bytes]:
        """The payloads of the given samples, in the given order."""
        found: dict[tuple[int, int], bytes] = {}
        wanted: dict[int, dict[int, str]] = {}
        for partition, offset, key in zip(partitions, offsets, keys, strict=True):
            cached = self.cache.get((partition, offset))
            if cached is not None:
                found[(partition, offset)] = cached
                self.stats.from_cache += 1
            else:
                wanted.setdefault(partition, {})[offset] = key
        try:
            for partition, by_offset in wanted.items():
                for run in _runs(sorted(by_offset), self.max_gap):
                    found.update(self._read_run(partition, run, by_offset))
        finally:
            if wanted:  # an assigned consumer keeps fetching (every 10 ms at the log's end) until unassigned
                self._consumer.unassign()
        return [found[(p, o)] for p, o in zip(partitions, offsets, strict=True)]

    def _read_run(self, partition: int, run: list[int], keys: dict[int, str]) -> dict[tuple[int, int], bytes]:
        where = f"{self.topic}[{partition}]"
        self._consumer.assign([TopicPartition(self.topic, partition, run[0])])
        out: dict[tuple[int, int], bytes] = {}
        i, deadline = 0, time.monotonic() + self.timeout_s  # run[i]: the next offset wanted
        while i < len(run):
            # A short timeout: consume() waits for the whole count or the timeout, and records
            # arrive fetch by fetch, so a long one would idle on every partial batch.
            messages = self._consumer.consume(num_messages=min(10_000, run[-1] - run[i] + 1), timeout=0.02)
            if not messages and time.monotonic() > deadline:  # the broker, not the data: retried once it is back
                raise KafkaLayerError(
                    f"{where}: no records for {self.timeout_s:.0f} s; offset {run[i]} not reached", transient=True
                )
            for msg in messages:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        raise PayloadError(f"{where}: offset {run[i]} missing: the partition ends at {msg.offset()}")
                    if error.code() == KafkaError.OFFSET_OUT_OF_RANGE:
                        raise PayloadError(f"{where}: offset {run[i]} is no longer in the log ({error.str()})")
                    raise KafkaLayerError(f"{where}: {error.str()}", transient=not error.fatal())
                deadline = time.monotonic() + self.timeout_s
                offset = msg.offset()
                if offset < run[i]:
                    self.stats.read_through += 1
                    continue
                if offset > run[i]:
                    raise PayloadError(f"{where}: offset {run[i]} missing (the log goes on at {offset})")
                out[(partition, offset)] = payload = self._payload(where, offset, msg.value(), keys[offset])
                self.cache.put((partition, offset), payload)
                self.stats.from_kafka += 1
                i += 1
                if i == len(run):
                    break
        return out

    def _payload(self, where: str, offset: int, value: bytes | None, key: str) -> bytes:
        try:
            record = self.codec.decode(value).record
        except EventDecodeError as exc:
            raise PayloadError(f"{where}@{offset}: undecodable sample: {exc}") from None
        if record.get("key") != key:
            raise PayloadError(f"{where}@{offset}: holds key {record.get('key')!r}, the manifest says {key!r}")
        payload = record.get("payload")
        if payload is None:
            raise PayloadError(f"{where}@{offset}: sample {key!r} has no inline payload")
        return payload

    def close(self) -> None:
        self._consumer.close()


def _runs(offsets: list[int], max_gap: int) -> list[list[int]]:
    """Split sorted offsets where the gap exceeds max_gap.

    >>> _runs([1, 2, 3, 10, 500, 501], 100)
    [[1, 2, 3, 10], [500, 501]]
    """
    runs: list[list[int]] = []
    for offset in offsets:
        if runs and offset - runs[-1][-1] <= max_gap:
            runs[-1].append(offset)
        else:
            runs.append([offset])
    return runs


class PayloadFetchers:
    """One fetcher per dataset topic, created on first use; their caches live across triggers."""

    def __init__(self, settings: KafkaSettings, codec: EventCodec, cache_bytes: int) -> None:
        self.settings, self.codec, self.cache_bytes = settings, codec, cache_bytes
        self.names = TopicNames(settings.namespace)
        self._fetchers: dict[str, PayloadFetcher] = {}

    def __getitem__(self, dataset: str) -> PayloadFetcher:
        if dataset not in self._fetchers:
            self._fetchers[dataset] = PayloadFetcher(
                self.settings, self.names.samples(dataset), codec=self.codec, cache_bytes=self.cache_bytes
            )
        return self._fetchers[dataset]

    def close(self) -> None:
        for fetcher in self._fetchers.values():
            fetcher.close()
