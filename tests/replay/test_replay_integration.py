"""Replays of each input format, read back from the real broker: payloads, labels, order, markers."""

import struct
from collections import defaultdict

import numpy as np
import pytest
from confluent_kafka import TopicPartition

from modyn_stream.events import EventCodec
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.replay.publisher import TimestampPolicy, replay
from modyn_stream.replay.sources import read_binary, read_csv, read_idx, read_image_folder, read_npz
from tests.replay.test_sources import write_idx

pytestmark = pytest.mark.integration


def read_topic(settings, topic: str, partitions: int) -> dict[int, list]:
    """Decoded events per partition, up to the end offsets."""
    codec = EventCodec()
    events: dict[int, list] = defaultdict(list)
    with BatchConsumer(settings, "replay-check") as consumer:
        tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
        consumer.assign(tps)
        for msg in consumer.read_to_end(tps):
            events[msg.partition()].append(codec.decode(msg.value()))
    return events


def check_round_trip(settings, dataset, source, policy, partitions=3, **window):
    result = replay(settings, dataset, source, policy, partitions=partitions, **window)
    events = read_topic(settings, result.topic, partitions)
    samples = {}
    for items in events.values():
        body = [e.record for e in items if e.name == "SampleEvent"]
        marker = items[-1]
        assert marker.name == "EndOfStream" and marker.record["num_samples"] == len(body)
        order = [(r["event_time"], r["key"]) for r in body]
        assert order == sorted(order), "each partition is in (event_time, key) order"
        samples.update({r["key"]: r for r in body})
    return result, samples


def test_npz_replay_round_trips_and_honours_the_replay_window(kafka_settings, tmp_path):
    x = np.random.default_rng(0).integers(0, 255, size=(50, 2, 3), dtype=np.uint8)
    t = np.arange(50, dtype=np.int64)[::-1] * 1000
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(50) % 4, t=t)
    source = read_npz(tmp_path / "d.npz", t_key="t")
    result, samples = check_round_trip(
        kafka_settings, "npz", source, TimestampPolicy("field"), start_at_ms=10_000, stop_at_ms=40_000
    )
    chosen = [i for i in range(50) if 10_000 <= t[i] < 40_000]
    assert result.published == len(chosen) == 30 and result.skipped == 20
    assert sorted(samples) == sorted(f"{i:010d}" for i in chosen)
    for i in chosen:
        record = samples[f"{i:010d}"]
        assert record["payload"] == x[i].tobytes() and record["label"] == i % 4 and record["event_time"] == t[i]
    assert result.first_event_time == 10_000 and result.last_event_time == 39_000


def test_idx_csv_binary_and_image_replays_round_trip(kafka_settings, tmp_path):
    images = np.arange(6 * 3 * 3, dtype=np.uint8).reshape(6, 3, 3)
    write_idx(tmp_path / "i.idx", images)
    write_idx(tmp_path / "l.idx", np.arange(6, dtype=np.uint8))
    _, idx = check_round_trip(
        kafka_settings, "idx", read_idx(tmp_path / "i.idx", tmp_path / "l.idx"), TimestampPolicy()
    )
    assert [idx[f"{i:010d}"]["payload"] for i in range(6)] == [images[i].tobytes() for i in range(6)]
    assert [idx[f"{i:010d}"]["label"] for i in range(6)] == list(range(6))

    (tmp_path / "d.csv").write_text("f1,label,f2\n0.5,1,a\n0.25,0,b\n")
    _, csv = check_round_trip(kafka_settings, "csv", read_csv(tmp_path / "d.csv", "label"), TimestampPolicy())
    assert [(csv[k]["payload"], csv[k]["label"]) for k in sorted(csv)] == [(b"0.5,a", 1), (b"0.25,b", 0)]

    (tmp_path / "r.bin").write_bytes(b"".join(struct.pack("<H", i) + bytes([i] * 3) for i in range(5)))
    _, binary = check_round_trip(kafka_settings, "bin", read_binary([tmp_path / "r.bin"], 5, 2), TimestampPolicy())
    assert [(binary[k]["label"], binary[k]["payload"]) for k in sorted(binary)] == [
        (i, bytes([i] * 3)) for i in range(5)
    ]

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.png").write_bytes(b"\x89PNG" + bytes([i]))
        (folder / f"{i}.label").write_text(str(i * 2))
    _, imgs = check_round_trip(kafka_settings, "imgs", read_image_folder(folder), TimestampPolicy("mtime"))
    assert {k: (r["payload"], r["label"], r["content_type"]) for k, r in imgs.items()} == {
        f"{i}.png": (b"\x89PNG" + bytes([i]), i * 2, "image/png") for i in range(4)
    }


def test_keys_and_partitions_are_stable_across_replays(kafka_settings, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((40, 2), dtype=np.uint8), y=np.zeros(40, dtype=int))
    source = read_npz(tmp_path / "d.npz")
    first = replay(kafka_settings, "stable", source, TimestampPolicy(), partitions=4)
    second = replay(kafka_settings, "stable", source, TimestampPolicy(), partitions=4)
    assert first.per_partition == second.per_partition
    events = read_topic(kafka_settings, first.topic, 4)
    for items in events.values():
        keys = [e.record["key"] for e in items if e.name == "SampleEvent"]
        assert keys[: len(keys) // 2] == keys[len(keys) // 2 :]  # same keys, same partition, same order
