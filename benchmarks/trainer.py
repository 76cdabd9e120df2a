"""Training throughput of the trainer path beside the same loop fed from in-memory tensors, in one run.

Setup: N 28x28 uint8 images (10 classes, a class-dependent pattern plus noise) are replayed into
the sample topic over 4 partitions; the manifest lists them all in (partition, offset) order, as
the selector writes it.
- trainer path: manifest -> payloads fetched from Kafka by offset (PayloadFetcher) -> decoded in
  batches (the `raw` decoder) in the ChunkLoader's background thread -> `train()`. "cold" starts
  with an empty payload cache, "warm" repeats the trigger with the cache filled by the cold run.
- baseline: the same model, seed, config and `train()` fed tensors decoded beforehand, in memory.
Both first train a throwaway model on 2,048 random in-memory samples (warming allocator and
kernels, as in a long-running trainer), then time one epoch (later epochs reuse tensors already
in memory, which would flatter the ratio).
Each model runs in its own process; the cold run comes first, then in-memory and warm runs
alternate `--repeat` times (medians), so this machine's noise hits both alike. Peak RSS is the
process's after the cold run: the trainer path alone (torch included), before any baseline tensors.
Targets (issue 5): >= 90% of the in-memory throughput warm, >= 80% cold.
Usage: python benchmarks/trainer.py [--samples 50000] [--models SmallCNN,MLP] [--device cpu|cuda] [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._process import in_child, rss_mib
from benchmarks._report import report

MODELS = {
    "SmallCNN": ({"num_classes": 10, "in_channels": 1, "width": 16}, [1, 28, 28]),
    "MLP": ({"in_features": 784, "num_classes": 10, "hidden": [256, 128]}, [784]),
}


def images(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    patterns = rng.integers(0, 256, size=(10, 28, 28))
    noise = rng.integers(0, 64, size=(n, 28, 28))
    return ((patterns[labels] * 3 // 4 + noise) % 256).astype(np.uint8), labels


def training_config(batch_size: int, device: str):
    from modyn_stream.pipeline.schema.training import TrainingSection

    return TrainingSection.model_validate({
        "device": device, "batch_size": batch_size, "epochs_per_trigger": 1, "seed": 0, "amp": device != "cpu",
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.05, "momentum": 0.9}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip


def _decoder(shape: list[int]):
    from modyn_stream.training.decoders import build_decoder

    return build_decoder("raw", {"dtype": "uint8", "shape": shape, "scale": 1 / 255}, [], trusted=False)


def _fit(model_id: str, chunks, n: int, batch_size: int, device: str) -> float:
    import torch

    from modyn_stream.training.loop import train
    from modyn_stream.training.models import build_model

    config, shape = MODELS[model_id]
    warm_up = [(torch.rand(2048, *shape), torch.randint(0, 10, (2048,)), torch.ones(2048))]
    train(
        build_model(model_id, config),
        warm_up,
        training_config(batch_size, device),
        trigger_index=0,
        num_samples=2048,
        device=torch.device(device),
    )  # allocator and kernels warm, as in a long-running trainer
    torch.manual_seed(0)
    model = build_model(model_id, config)
    started = time.perf_counter()
    train(model, chunks, training_config(batch_size, device), trigger_index=0, num_samples=n,
          device=torch.device(device))  # fmt: skip
    if device != "cpu":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - started)


def measure(model_id: str, n: int, batch_size: int, device: str, settings, topic: str, manifest, repeat: int) -> dict:
    """Cold once; then in-memory and warm interleaved `repeat` times (medians): this box's noise hits both alike."""
    import torch

    from modyn_stream.training.fetch import PayloadFetcher
    from modyn_stream.training.loader import ChunkLoader

    decode = _decoder(MODELS[model_id][1])
    fetcher = PayloadFetcher(settings, topic)

    def through_kafka() -> float:
        loader = ChunkLoader(fetcher, decode, manifest)
        try:
            return _fit(model_id, loader, n, batch_size, device)
        finally:
            loader.close()

    cold = through_kafka()
    rss = rss_mib()  # the trainer path alone
    x, y = images(n)
    inputs, labels, weights = decode([row.tobytes() for row in x]), torch.from_numpy(y), torch.ones(n)
    chunks = [(inputs[i : i + 4096], labels[i : i + 4096], weights[i : i + 4096]) for i in range(0, n, 4096)]
    memory, warm = [], []
    for _ in range(repeat):
        memory.append(_fit(model_id, chunks, n, batch_size, device))
        warm.append(through_kafka())
    assert fetcher.stats.from_cache >= n * repeat, "the warm runs must be served from the cache"
    fetcher.close()
    return {"in-memory": float(np.median(memory)), "cold": cold, "warm": float(np.median(warm)), "rss": rss}


def manifest_of(settings, topic: str, total: int):
    """Every sample of the topic in (partition, offset) order, as the selector's manifest lists them."""
    import pyarrow as pa
    from confluent_kafka import Consumer

    from modyn_stream.events import EventCodec
    from modyn_stream.selection.manifest import SCHEMA

    codec = EventCodec()
    consumer = Consumer({**settings.client_config(), "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    rows, seen = [], 0
    while seen < total:
        for message in consumer.consume(10_000, timeout=1.0):
            if message.error():
                continue
            seen += 1
            event = codec.decode(message.value())
            if event.name == "SampleEvent":
                rows.append((message.partition(), message.offset(), event.record["key"], event.record["label"], 1.0))
    consumer.close()
    rows.sort(key=lambda r: (r[0], r[1]))
    return pa.table(dict(zip(SCHEMA.names, map(list, zip(*rows, strict=True)), strict=True)), schema=SCHEMA)


def main() -> None:
    from modyn_stream.kafka.config import KafkaSettings
    from modyn_stream.kafka.connect import connected
    from modyn_stream.replay.publisher import TimestampPolicy, replay
    from modyn_stream.replay.sources import SampleSource

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--models", default="SmallCNN,MLP")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, partitions = args.samples, 4
    x, y = images(n)
    source = SampleSource([row.tobytes() for row in x], y, None, np.zeros(n, np.int64), "image/raw")
    settings = KafkaSettings.from_env(namespace=f"bench{uuid.uuid4().hex[:6]}")
    rows, summary = [], []
    with connected(settings, say=print) as settings:
        published = replay(settings, "bench", source, TimestampPolicy("increasing", step_ms=1), partitions=partitions)
        manifest = manifest_of(settings, published.topic, n + partitions)
        for model_id in args.models.split(","):
            got = in_child(measure, model_id, n, args.batch_size, args.device, settings, published.topic, manifest,
                              args.repeat)  # fmt: skip
            for mode, key in [("in-memory tensors", "in-memory"), ("trainer path, cold cache", "cold"),
                              ("trainer path, warm cache", "warm")]:  # fmt: skip
                ratio = got[key] / got["in-memory"]
                rows.append(
                    {
                        "model": model_id,
                        "device": args.device,
                        "path": mode,
                        "samples/s": got[key],
                        "vs in-memory": f"{ratio:.2f}",
                        "peak RSS MiB": got["rss"] if key == "cold" else "-",
                    }
                )
                if key != "in-memory":
                    target = 0.9 if key == "warm" else 0.8
                    summary.append({"measure": f"trainer {model_id} ({args.device}), {mode}", "value": got[key],
                                    "unit": "samples/s", "baseline": got["in-memory"], "ratio": ratio,
                                    "target": f">= {target:.1f}x in-memory", "met": ratio >= target})  # fmt: skip
    report(f"trainer-{args.device.split(':')[0]}", rows, summary)


if __name__ == "__main__":
    main()
