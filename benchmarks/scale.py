"""Scale: the same pipeline at growing sample counts, each size beside the plain PyTorch script.

Each size runs `benchmarks/scale_tabular.yaml` (tabular-drift; `--example` for another DataAmount +
NewData pipeline, e.g. examples/digits_data_amount.yaml) with 8 DataAmount triggers over the stream,
all data so far each time, every model scored on every slice: the streaming run and the plain
script (benchmarks/pipeline.py) interleaved `--repeat` times, each in its own process. Reported per
size: wall times (medians, and the range of streaming/plain over pairs), the trainer's fetch and
training seconds, the run process's peak RSS, ClickHouse disk per million samples, and the payload
fetch of the whole stream (4,096-sample chunks in stream order, as the trainer reads them) against
one raw confluent-kafka consumer reading the same partitions in the same run. Targets (issue
"Scale"): time grows linearly (1M at most 3.5x the 300k time), 1M at most 1.5x plain, the fetch at
least 0.5x the raw consumer's rate, RSS flat (within 20%) from 300k up.

    .venv/bin/python benchmarks/scale.py [--samples 100000,300000,1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._process import in_child, rss_mib
from benchmarks._report import report
from benchmarks.pipeline import median_run

ROOT = Path(__file__).resolve().parents[1]
TRIGGERS = 8


def scaled(example: Path, samples: int, directory: Path) -> Path:
    """`example` with `samples` samples and a DataAmountTrigger firing TRIGGERS times over them."""
    import yaml

    spec = yaml.safe_load(example.read_text())
    spec["replay"]["samples"] = samples
    spec["trigger"] = {"id": "DataAmountTrigger", "num_samples": samples // TRIGGERS}
    path = directory / f"{example.stem}-{samples}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def streaming(example: Path, bootstrap: str, runs: str) -> dict:
    from modyn_stream.kafka.config import KafkaSettings
    from modyn_stream.kafka.topics import TopicAdmin, TopicNames
    from modyn_stream.orchestration.run import run_pipeline
    from modyn_stream.pipeline.loading import load_pipeline

    config = load_pipeline(example)
    settings = KafkaSettings(bootstrap_servers=bootstrap, namespace=f"scale{uuid.uuid4().hex[:6]}")
    result = run_pipeline(config, settings, Path(runs), config_dir=example.parent, fresh=True)
    rss = rss_mib()
    (fetch, train), = result.store.query(
        "SELECT sum(timings_s['fetch']), sum(timings_s['train']) FROM models FINAL WHERE pipeline_id = {p:String}",
        {"p": result.pipeline_id},
    )  # fmt: skip
    (disk,), = result.store.query("SELECT sum(bytes_on_disk) FROM system.parts WHERE active")  # fmt: skip
    namespace = json.loads((result.run_dir / "run.json").read_text())["namespace"]
    run_settings = settings.model_copy(update={"namespace": namespace})
    topic = TopicNames(namespace).samples(config.data.dataset_id)
    fetched, raw = fetch_rates(run_settings, topic, result.store, config.data.dataset_id)
    TopicAdmin(settings).delete_namespace(namespace)  # off the clock: later runs face the same broker
    return {
        "seconds": result.seconds,
        "fetch": fetch,
        "train": train,
        "rss_mib": rss,
        "models": result.progress.models,
        "disk_mib": disk / 2**20,
        "fetch_rate": fetched,
        "raw_rate": raw,
    }


def fetch_rates(settings, topic: str, store, dataset: str) -> tuple[float, float]:
    """Samples per second: the trainer's fetcher reading the whole stream in manifest order (a fresh one, empty
    cache), and one raw consumer reading every partition from its start to its end."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from modyn_stream.training.fetch import PayloadFetcher

    rows = store.query(
        "SELECT kafka_partition, kafka_offset, key FROM samples WHERE dataset = {d:String} ORDER BY event_time, key",
        {"d": dataset},
    )
    fetcher = PayloadFetcher(settings, topic, cache_bytes=0)
    began = time.perf_counter()
    for start in range(0, len(rows), 4096):
        fetcher.fetch(*zip(*rows[start : start + 4096], strict=True))
    fetcher.release()
    fetched = len(rows) / (time.perf_counter() - began)
    fetcher.close()
    consumer = Consumer({**settings.client_config(), "group.id": f"raw-{uuid.uuid4().hex[:6]}",
                         "enable.partition.eof": True, "isolation.level": "read_committed"})  # fmt: skip
    partitions = sorted({p for p, _, _ in rows})
    began, ended, count = time.perf_counter(), set(), 0
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    while len(ended) < len(partitions):
        for msg in consumer.consume(10_000, timeout=0.1):
            if msg.error() is None:
                count += 1
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                ended.add(msg.partition())
    raw = count / (time.perf_counter() - began)
    consumer.close()
    return fetched, raw


def plain(example: Path) -> dict:
    from benchmarks.pipeline import plain as plain_script

    result = plain_script(example, None)
    return {**result, "rss_mib": rss_mib()}


def main() -> None:
    from modyn_stream.kafka.config import KafkaSettings
    from modyn_stream.kafka.connect import connected

    parser = argparse.ArgumentParser()
    parser.add_argument("--example", type=Path, default=ROOT / "benchmarks" / "scale_tabular.yaml")
    parser.add_argument("--samples", default="100000,300000,1000000,3000000", help="comma-separated sizes")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side per size; medians are reported")
    args = parser.parse_args()
    rows, summary, medians = [], [], {}
    with connected(KafkaSettings.from_env(), say=print) as settings, tempfile.TemporaryDirectory() as work:
        for samples in (int(s) for s in args.samples.split(",")):
            example = scaled(args.example.resolve(), samples, Path(work))
            bases, gots = [], []
            for _ in range(args.repeat):  # interleaved: this box's noise hits both sides alike
                bases.append(in_child(plain, example))
                gots.append(in_child(streaming, example, settings.bootstrap_servers, str(Path(work) / "runs")))
            base, got = median_run(bases), median_run(gots)
            medians[samples] = got
            pairs = sorted(g["seconds"] / b["seconds"] for b, g in zip(bases, gots, strict=True))
            per_million = 1e6 / samples
            rows += [
                {"run": f"plain, {samples:,}", "seconds": base["seconds"], "train s": base["train"], "fetch s": "-",
                 "peak RSS MiB": base["rss_mib"], "ClickHouse MiB per 1M": "-", "fetch / raw consumer": "-",
                 "vs plain": "1.00", "pairs": "-"},
                {"run": f"modyn-stream, {samples:,}", "seconds": got["seconds"], "train s": got["train"],
                 "fetch s": got["fetch"], "peak RSS MiB": got["rss_mib"],
                 "ClickHouse MiB per 1M": got["disk_mib"] * per_million,
                 "fetch / raw consumer": got["fetch_rate"] / got["raw_rate"],
                 "vs plain": f"{got['seconds'] / base['seconds']:.2f}", "pairs": f"{pairs[0]:.2f}-{pairs[-1]:.2f}"},
            ]  # fmt: skip
            print(json.dumps({"samples": samples, "plain": bases, "streaming": gots}))
            ratio = got["seconds"] / base["seconds"]
            summary.append(
                {
                    "measure": f"end to end, {samples:,} samples",
                    "value": got["seconds"],
                    "unit": "s",
                    "baseline": base["seconds"],
                    "ratio": ratio,
                    "target": "<= 1.5x plain" if samples == 1_000_000 else None,
                    "met": ratio <= 1.5 if samples == 1_000_000 else None,
                }
            )
            summary.append({"measure": f"payload fetch vs raw consumer, {samples:,}", "value": got["fetch_rate"],
                            "unit": "samples/s", "baseline": got["raw_rate"],
                            "ratio": got["fetch_rate"] / got["raw_rate"], "target": ">= 0.5x",
                            "met": got["fetch_rate"] / got["raw_rate"] >= 0.5})  # fmt: skip
    if 300_000 in medians and 1_000_000 in medians:
        growth = medians[1_000_000]["seconds"] / medians[300_000]["seconds"]
        summary.append({"measure": "time 1M / time 300k", "value": growth, "unit": "x", "baseline": None,
                        "ratio": None, "target": "<= 3.5x",
                        "met": growth <= 3.5})  # fmt: skip
    large = [m["rss_mib"] for s, m in medians.items() if s >= 300_000]
    if len(large) > 1:
        spread = max(large) / min(large)
        summary.append({"measure": "peak RSS, largest / smallest from 300k", "value": spread, "unit": "x",
                        "baseline": None, "ratio": None,
                        "target": "<= 1.2x", "met": spread <= 1.2})  # fmt: skip
    report("scale", rows, summary)


if __name__ == "__main__":
    main()
