"""Freshness: from publishing the sample that completes a trigger to the model version trained on it.

A live stream (one partition, no end of stream) feeds the services as `modyn-stream run` steps them
(ingest, trigger, selector, trainer in one loop, chDB embedded). Each round publishes all but one
sample of a DataAmountTrigger's worth and lets the services settle; then, at t0, it publishes the
completing sample together with the next one (whose later event time moves the watermark past
it), and times each stage as it commits: ingest, trigger, selection, and the trainer's fetch,
training and store (from the ModelVersionEvent's timings); "handoffs" is the rest (polls between
stages, manifest check, transactions). The first round warms up and is not counted; medians of
the others. Target: everything but training <= 2 s.

    .venv/bin/python benchmarks/freshness.py [--per-trigger 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._process import in_child
from benchmarks._report import report

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 2.0
STAGES = ("publish", "ingest", "trigger", "selection", "fetch", "training", "store", "handoffs")


def measure(bootstrap: str, per_trigger: int, rounds: int) -> list[dict[str, float]]:
    from modyn_stream.artifacts import ArtifactStore
    from modyn_stream.datasets import generate
    from modyn_stream.events import EventCodec
    from modyn_stream.ingest.service import IngestService
    from modyn_stream.kafka.config import KafkaSettings
    from modyn_stream.kafka.producer import EventProducer
    from modyn_stream.kafka.topics import TopicAdmin, TopicNames, sample_topic_spec
    from modyn_stream.metadata import MetadataStore
    from modyn_stream.orchestration.run import POLL_S
    from modyn_stream.pipeline.loading import load_pipeline
    from modyn_stream.pipeline.registry import register_pipeline
    from modyn_stream.selection.service import SelectorService
    from modyn_stream.training.service import TrainerService
    from modyn_stream.triggers.service import TriggerService

    config = load_pipeline(ROOT / "examples" / "digits_data_amount.yaml")
    config = config.model_copy(
        update={
            "trigger": config.trigger.model_copy(update={"num_samples": per_trigger}),
            "selection_strategy": config.selection_strategy.model_copy(update={"tail_triggers": 0}),
            "training": config.training.model_copy(update={"epochs_per_trigger": 1}),
            "evaluation": None,
            "replay": None,
        }
    )
    settings = KafkaSettings(bootstrap_servers=bootstrap, namespace=f"fresh{uuid.uuid4().hex[:6]}")
    names, dataset = TopicNames(settings.namespace), config.data.dataset_id
    TopicAdmin(settings).ensure([sample_topic_spec(names, dataset, 1)])
    data = generate("digits-drift", samples=per_trigger * (rounds + 1) + 2, seed=0)
    codec = EventCodec.for_settings(settings)
    work = Path(tempfile.mkdtemp(prefix="freshness-"))
    store = MetadataStore(f"chdb://{work / 'metadata'}", "modyn")
    store.migrate()
    register_pipeline(config, settings, store)
    producer = EventProducer(settings)
    services = [
        ingest := IngestService(settings, store, max_wait_s=POLL_S),
        trigger := TriggerService(settings, store),
        selector := SelectorService(settings, store, ArtifactStore(work / "artifacts")),
        trainer := TrainerService(settings, store, ArtifactStore(work / "artifacts")),
    ]

    def publish(indices: range) -> None:
        for i in indices:
            record = {"dataset": dataset, "key": f"{i:010d}", "event_time": int(data.t[i]), "label": int(data.y[i]),
                      "payload": data.x[i].tobytes(), "content_type": "application/octet-stream"}  # fmt: skip
            producer.produce(names.samples(dataset), codec.encode("SampleEvent", record), key=record["key"])
        producer.flush()

    def ingested() -> int:
        return sum(s.samples_ingested for s in ingest.partition_states())

    results, published = [], 0
    try:
        for index in range(rounds + 1):
            before = (index + 1) * per_trigger - 1  # one short of the trigger
            publish(range(published, before))
            deadline = time.monotonic() + 120
            while ingested() < before or trigger.step():
                ingest.step()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"round {index}: {ingested()} of {before} samples ingested after 120 s")
            t0 = time.monotonic()
            publish(range(before, before + 2))  # the completing sample, and one after it for the watermark
            published = before + 2
            done = {"published": time.monotonic() - t0}
            steps = {"ingest": ingest.step, "trigger": trigger.step, "selection": lambda: selector.step(POLL_S),
                     "model": lambda: trainer.step(POLL_S)}  # fmt: skip
            while "model" not in done:
                for stage, step in steps.items():
                    if step() and stage not in done:
                        done[stage] = time.monotonic() - t0
                if time.monotonic() - t0 > 300:
                    raise RuntimeError(f"round {index}: no model version 300 s after the completing sample")
            timings = trainer.last_event["timings_s"]
            split = {
                "publish": done["published"],
                "ingest": done["ingest"] - done["published"],
                "trigger": done["trigger"] - done["ingest"],
                "selection": done["selection"] - done["trigger"],
                "fetch": timings["fetch"] + timings["decode"],
                "training": timings["train"],
                "store": timings["store"],
            }
            split["handoffs"] = done["model"] - sum(split.values())
            split["total"] = done["model"]
            if index:  # the first round warms up (imports, consumer group joins)
                results.append(split)
    finally:
        for service in reversed(services):
            service.close()
    return results


def main() -> None:
    from modyn_stream.kafka.config import KafkaSettings
    from modyn_stream.kafka.connect import connected

    parser = argparse.ArgumentParser()
    parser.add_argument("--per-trigger", type=int, default=500, help="samples per DataAmountTrigger")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with connected(KafkaSettings.from_env(), say=print) as settings:
        rounds = in_child(measure, settings.bootstrap_servers, args.per_trigger, args.rounds)
    median = {key: statistics.median(r[key] for r in rounds) for key in (*STAGES, "total")}
    rows = [{"stage": stage, "median s": median[stage], "max s": max(r[stage] for r in rounds)}
            for stage in (*STAGES, "total")]  # fmt: skip
    beyond_training = median["total"] - median["training"]
    rows.append({"stage": "total but training", "median s": beyond_training, "max s": "-"})
    summary = [{"measure": f"freshness, sample -> model ({args.per_trigger} samples/trigger), not training",
                "value": beyond_training, "unit": "s", "baseline": None, "ratio": None,
                "target": f"<= {TARGET_S:g} s", "met": beyond_training <= TARGET_S}]  # fmt: skip
    report("freshness", rows, summary)


if __name__ == "__main__":
    main()
