"""DataDriftTrigger in the trigger service on real Kafka and ClickHouse: decisions at their points, each one
recorded once across a crash, and decisions on embeddings that wait for the model of the last trigger."""

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from confluent_kafka import TopicPartition

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.events import EventCodec
from modyn_stream.kafka.consumer import BatchConsumer
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.pipeline.registry import register_pipeline
from modyn_stream.replay.publisher import TimestampPolicy, replay, sample_keys
from modyn_stream.replay.sources import SampleSource
from modyn_stream.training.model_store import model_path, save_model
from modyn_stream.training.models import build_model
from modyn_stream.triggers.service import TriggerService
from tests.triggers.test_service_integration import ingest_all, pipeline

pytestmark = pytest.mark.integration
SAMPLES, SHIFT, EVERY = 1200, 600, 200
DRIFT = {
    "id": "DataDriftTrigger",
    "evaluation_interval_data_points": EVERY,
    "windowing_strategy": {"id": "AmountWindowingStrategy", "amount_ref": 200, "amount_cur": 200},
    "sample_size": 150,
    "metrics": {
        "mmd": {"id": "AlibiDetectMmdDriftMetric",
                "decision_criterion": {"id": "ThresholdDecisionCriterion", "threshold": 0.3}},
        "ks": {"id": "AlibiDetectKSDriftMetric", "decision_criterion": {"id": "HypothesisTestDecisionCriterion"}},
    },
}  # fmt: skip


def shifting_images() -> SampleSource:
    """8x8 uint8 pictures: dark ones, then from sample SHIFT on bright ones."""
    rng = np.random.default_rng(3)
    level = np.where(np.arange(SAMPLES) < SHIFT, 40, 200)[:, None]
    pixels = (level + rng.integers(-30, 30, size=(SAMPLES, 64))).astype(np.uint8)
    return SampleSource([row.tobytes() for row in pixels], rng.integers(0, 10, SAMPLES), None,
                        np.zeros(SAMPLES, dtype=np.int64), "application/octet-stream")  # fmt: skip


@pytest.fixture
def stream(kafka_settings, store):
    source = shifting_images()
    policy = TimestampPolicy("increasing", step_ms=1000)
    replay(kafka_settings, "drifting", source, policy, partitions=3)
    ingest_all(kafka_settings, store, "drifting", 3, SAMPLES)
    return sorted(zip(policy.assign(source).tolist(), sample_keys(source), strict=True))


def records(settings, topic: str) -> list[dict]:
    codec = EventCodec()
    with BatchConsumer(settings, f"check-{uuid.uuid4().hex[:6]}") as consumer:
        partitions = [TopicPartition(topic, p, 0) for p in range(3)]
        consumer.assign(partitions)
        return [codec.decode(m.value()).record for m in consumer.read_to_end(partitions)]


def by_pipeline(events: list[dict], pid: str, index: str) -> list[dict]:
    return sorted((e for e in events if e["pipeline_id"] == pid), key=lambda e: e[index])


def test_drift_on_raw_features_fires_where_the_stream_shifts_once_across_a_crash(kafka_settings, store, stream):
    pid = register_pipeline(pipeline("drifting", {**DRIFT, "features": "raw"}), kafka_settings, store)
    assert crash_and_resume(kafka_settings, store, at_commit=1), "crashed right after committing the first trigger"
    names = TopicNames(kafka_settings.namespace)
    triggers = by_pipeline(records(kafka_settings, names.triggers), pid, "trigger_index")
    assert [(t["boundary_event_time"], t["boundary_key"]) for t in triggers] == [
        stream[EVERY - 1],
        stream[SHIFT + EVERY - 1],
    ]
    assert [t["num_new_samples"] for t in triggers] == [EVERY, SHIFT]
    assert "mmd" in triggers[1]["reason"] and "ks" in triggers[1]["reason"], triggers[1]["reason"]
    evaluations = by_pipeline(records(kafka_settings, names.trigger_evaluations), pid, "evaluation_index")
    assert [e["evaluation_index"] for e in evaluations] == list(range(SAMPLES // EVERY)), "each decision once"
    assert [e["fired"] for e in evaluations] == [True, False, False, True, False, False]
    assert [e["trigger_index"] for e in evaluations if e["fired"]] == [0, 1]
    detections = [e for e in evaluations if e["phase"] == "detection"]
    assert all(e["reference_samples"] == e["current_samples"] == 150 for e in detections), "sample_size"
    shifted = detections[2]["results"]
    assert {r["metric"]: r["fired"] for r in shifted} == {"ks": True, "mmd": True}
    assert all(not r["fired"] for e in detections if not e["fired"] for r in e["results"])
    projected = store.query(
        "SELECT evaluation_index, fired, metric FROM trigger_evaluations FINAL WHERE pipeline_id = {p:String} "
        "ORDER BY evaluation_index",
        {"p": pid},
    )
    assert [(i, f) for i, f, _ in projected] == [(e["evaluation_index"], e["fired"]) for e in evaluations]
    assert projected[3][2] == ["ks", "mmd"]


def crash_and_resume(kafka_settings, store, at_commit: int) -> bool:
    """One trigger-service step that crashes right after its `at_commit`-th committed trigger, then a new service
    resuming from the topics; whether it crashed."""
    commits = {"seen": 0}

    class Crash(Exception):
        pass

    def fault(point):
        commits["seen"] += 1
        if commits["seen"] == at_commit:
            raise Crash(point)

    for attempt in range(2):
        service = TriggerService(kafka_settings, store, fault=fault)
        try:
            service.step()
        except Crash:
            continue
        finally:
            service.close()
        return attempt == 1
    return False


def fake_training(store, artifacts: ArtifactStore, config, pid: str, index: int, weights=None) -> None:
    """What the trainer leaves for trigger `index`: a model file and its `models` row (`weights`, else the model's
    seeded by index)."""
    torch.manual_seed(index)
    path = model_path(artifacts, pid, index)
    sha = save_model(artifacts, path, weights or build_model(config.model.id, config.model.config).state_dict(), {})
    store.insert("models", {
        "pipeline_id": [pid], "trigger_index": [index], "model_id": [f"{pid}-{index}"], "parent_model_id": [None],
        "model_uri": [path.as_uri()], "model_sha256": [sha], "manifest_sha256": [""], "num_samples": [0],
        "epochs": [1], "final_loss": [None], "timings_s": [{}], "created_at": [int(time.time() * 1000)],
    })  # fmt: skip


def test_drift_on_embeddings_waits_for_each_model_so_slow_training_gives_the_same_triggers(
    kafka_settings,
    store,
    stream,
    tmp_path: Path,
):
    artifacts = ArtifactStore(tmp_path)
    config = pipeline("drifting", DRIFT)
    fast_config, slow_config = (
        config.model_copy(update={"pipeline": config.pipeline.model_copy(update={"name": name})})
        for name in ("fast", "slow")
    )
    fast = register_pipeline(fast_config, kafka_settings, store)
    slow = register_pipeline(slow_config, kafka_settings, store)
    names = TopicNames(kafka_settings.namespace)
    with TriggerService(kafka_settings, store) as service:
        service.step()
        assert service.batched.waiting == {fast, slow}, "after the first trigger, each waits for its model"
        for index in range(3):  # fast: each model as soon as its trigger fired
            fake_training(store, artifacts, fast_config, fast, index)
            service.step()
            service.step()  # nothing changes while a model is missing
        fast_triggers = by_pipeline(records(kafka_settings, names.triggers), fast, "trigger_index")
        assert len(by_pipeline(records(kafka_settings, names.triggers), slow, "trigger_index")) == 1
        for index in range(len(fast_triggers)):  # slow: the models arrive long after
            fake_training(store, artifacts, slow_config, slow, index)
        while service.step():
            pass
    slow_triggers = by_pipeline(records(kafka_settings, names.triggers), slow, "trigger_index")
    boundaries = [(t["boundary_event_time"], t["boundary_key"]) for t in fast_triggers]
    assert boundaries == [(t["boundary_event_time"], t["boundary_key"]) for t in slow_triggers]
    assert boundaries[:2] == [stream[EVERY - 1], stream[SHIFT + EVERY - 1]], "the embeddings see the shift"
    assert [t["reason"] for t in fast_triggers] == [t["reason"] for t in slow_triggers]
    used = [
        e["model_trigger_index"]
        for e in by_pipeline(records(kafka_settings, names.trigger_evaluations), slow, "evaluation_index")
    ]
    assert used == [None, 0, 0, 0, 1, 1]


def test_a_sample_the_decoder_cannot_read_is_left_out_and_named_while_decisions_go_on(kafka_settings, store):
    good = shifting_images()
    payloads = list(good.payloads)
    payloads[150] = payloads[150][:63]  # one byte short of an 8x8 picture, in the reference of decisions 1 to 3
    source = SampleSource(payloads, good.labels, None, good.file_mtimes_ms, good.content_type)
    policy = TimestampPolicy("increasing", step_ms=1000)
    replay(kafka_settings, "damaged", source, policy, partitions=3)
    ingest_all(kafka_settings, store, "damaged", 3, SAMPLES)
    order = sorted(zip(policy.assign(source).tolist(), sample_keys(source), strict=True))
    bad_key = sample_keys(source)[150]
    pid = register_pipeline(pipeline("damaged", {**DRIFT, "features": "raw", "sample_size": None}), kafka_settings,
                            store)  # fmt: skip
    with TriggerService(kafka_settings, store) as service:
        service.step()
        assert not service.batched.failed
    names = TopicNames(kafka_settings.namespace)
    evaluations = by_pipeline(records(kafka_settings, names.trigger_evaluations), pid, "evaluation_index")
    assert len(evaluations) == SAMPLES // EVERY, "every decision made"
    assert [e["skipped_keys"] for e in evaluations] == [[], [bad_key], [bad_key], [bad_key], [], []]
    assert [e["reference_samples"] for e in evaluations] == [0, EVERY - 1, EVERY - 1, EVERY - 1, EVERY, EVERY]
    triggers = by_pipeline(records(kafka_settings, names.triggers), pid, "trigger_index")
    assert [(t["boundary_event_time"], t["boundary_key"]) for t in triggers] == [order[EVERY - 1],
                                                                              order[SHIFT + EVERY - 1]]  # fmt: skip
    projected = store.query("SELECT skipped_keys FROM trigger_evaluations FINAL WHERE pipeline_id = {p:String} "
                            "ORDER BY evaluation_index", {"p": pid})  # fmt: skip
    assert [row[0] for row in projected] == [e["skipped_keys"] for e in evaluations]


def failed_training(store, pid: str, index: int) -> None:
    store.insert("training_failures", {"pipeline_id": [pid], "trigger_index": [index], "reason": ["bad set"],
                                       "failed_at": [int(time.time() * 1000)]})  # fmt: skip


def test_after_a_failed_training_decisions_use_the_last_model_trained(kafka_settings, store, stream, tmp_path):
    artifacts = ArtifactStore(tmp_path)
    config = pipeline("drifting", DRIFT)
    pid = register_pipeline(config, kafka_settings, store)
    names = TopicNames(kafka_settings.namespace)
    with TriggerService(kafka_settings, store) as service:
        service.step()
        assert service.batched.waiting == {pid}
        failed_training(store, pid, 0)  # no model at all: the next decision is a first one again, and fires
        service.step()
        assert service.batched.waiting == {pid}, "then waits for the model of trigger 1"
        fake_training(store, artifacts, config, pid, 1)
        service.step()
        assert service.batched.waiting == {pid}, "the shift fired trigger 2"
        failed_training(store, pid, 2)
        service.step()
        assert not service.batched.waiting and not service.batched.failed
    evaluations = by_pipeline(records(kafka_settings, names.trigger_evaluations), pid, "evaluation_index")
    assert [e["phase"] for e in evaluations] == ["first", "first", "detection", "detection", "detection", "detection"]
    assert [e["model_trigger_index"] for e in evaluations] == [None, None, 1, 1, 1, 1]
    assert [e["trigger_index"] for e in evaluations] == [0, 1, None, 2, None, None]


def test_a_pipeline_whose_decision_fails_stops_deciding_and_says_why_while_the_others_go_on(
    kafka_settings, store, stream, tmp_path
):
    artifacts = ArtifactStore(tmp_path)
    broken = register_pipeline(pipeline("drifting", DRIFT), kafka_settings, store)
    config = pipeline("drifting", {**DRIFT, "features": "raw"})
    working = register_pipeline(config.model_copy(update={"pipeline": config.pipeline.model_copy(
        update={"name": "working"})}), kafka_settings, store)  # fmt: skip
    fake_training(store, artifacts, config, broken, 0, {"not.a.layer": torch.zeros(1)})  # weights of no such model
    with TriggerService(kafka_settings, store) as service:
        service.step()
        service.step()
        assert list(service.batched.failed) == [broken] and not service.batched.waiting
        assert "decides no more until the trigger service restarts" in service.batched.failed[broken]
    names = TopicNames(kafka_settings.namespace)
    assert len(by_pipeline(records(kafka_settings, names.trigger_evaluations), broken, "evaluation_index")) == 1
    assert len(by_pipeline(records(kafka_settings, names.trigger_evaluations), working, "evaluation_index")) == 6


def test_sliding_windows_decide_the_same_after_a_restart_that_kept_nothing(kafka_settings, store, stream):
    sliding = {**DRIFT, "features": "raw", "sample_size": None, "metrics": {"mmd": DRIFT["metrics"]["mmd"]},
               "windowing_strategy": {"id": "AmountWindowingStrategy", "amount_ref": 200, "amount_cur": 600,
                                      "allow_overlap": True}}  # fmt: skip
    config = pipeline("drifting", sliding)
    steady = register_pipeline(config, kafka_settings, store)
    with TriggerService(kafka_settings, store) as service:
        service.step()
    restarted = register_pipeline(config.model_copy(update={"pipeline": config.pipeline.model_copy(
        update={"name": "restarted"})}), kafka_settings, store)  # fmt: skip
    # the resumed service reads every window afresh; the steady one reused its chunks
    assert crash_and_resume(kafka_settings, store, at_commit=2), "crashed at the second trigger"
    evaluations = records(kafka_settings, TopicNames(kafka_settings.namespace).trigger_evaluations)
    decided = [[(e["fired"], e["current_samples"], [(r["metric"], r["value"]) for r in e["results"]])
                for e in by_pipeline(evaluations, pid, "evaluation_index")] for pid in (steady, restarted)]  # fmt: skip
    assert decided[0] == decided[1], "bit for bit the same distances"
    assert [samples for _, samples, _ in decided[0]] == [0, 400, 600, 600, 600, 600], "windows of 3 chunks"
