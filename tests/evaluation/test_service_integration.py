"""The evaluator service on real Kafka and ClickHouse (CPU): every metric exactly once, and right."""

import time
import uuid

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.datasets.generators import generate
from modyn_stream.evaluation.service import AFTER_PIPELINE, EvaluatorService
from modyn_stream.events import EventCodec
from modyn_stream.ingest.service import IngestService
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, sample_topic_spec
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.registry import register_pipeline
from modyn_stream.selection.service import SelectorService
from modyn_stream.timeutil import EARLIEST_MS, LATEST_MS, parse_time
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.model_store import load_model
from modyn_stream.training.models import build_model
from modyn_stream.training.service import TrainerService
from modyn_stream.triggers.service import TriggerService
from tests.selection.test_service_integration import crashes_at, read_all, run_until_idle
from tests.training.test_service_integration import (  # noqa: F401 (trained: a fixture)
    EVAL_INTERVALS,
    digits_pipeline,
    trained,
)

pytestmark = pytest.mark.integration
METRICS = {"Accuracy(top1)", "F1Score(macro)", "RocAuc", "loss"}


def published(settings) -> list[tuple[dict, bool]]:
    """Every committed EvaluationEvent, with whether it carries the after_pipeline marker."""
    codec = EventCodec()
    messages = read_all(settings, TopicNames(settings.namespace).evaluations)
    return [(codec.decode(m.value()).record, AFTER_PIPELINE in (m.headers() or [])) for m in messages]


def key(event: dict) -> tuple:
    return event["model_id"], event["dataset"], event["window_start"], event["window_end"], event["metric"]


def test_each_model_is_scored_once_per_window_and_metric_despite_a_crash(kafka_settings, trained):  # noqa: F811
    store, _, pid, config, versions, _ = trained
    crash = crashes_at(1)  # after the first model's rows are in ClickHouse, before its transaction commits
    run_until_idle(lambda: EvaluatorService(kafka_settings, store, progress=crash))
    events = [e for e, after_pipeline in published(kafka_settings) if not after_pipeline]
    windows = [(parse_time(a), parse_time(b)) for a, b in EVAL_INTERVALS]
    expected = {(v["model_id"], "dig", *w, m) for v in versions for w in windows for m in METRICS}
    assert sorted(map(key, events)) == sorted(expected), "each (model, window, metric) once"
    rows = store.query(
        "SELECT model_id, dataset, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end), metric, "
        "value, num_samples FROM evaluations FINAL WHERE pipeline_id = {p:String}",
        {"p": pid},
    )
    assert {tuple(r[:5]): r[5] for r in rows} == {key(e): e["value"] for e in events}
    assert len(rows) == len(expected)

    # the values are the model's on exactly the window's samples, read back from Kafka by offset
    data = generate("digits-drift", samples=600, seed=3)
    model = build_model(config.model.id, config.model.config)
    model.load_state_dict(load_model(versions[1]["model_uri"])[0])
    model.eval()
    start, end = windows[1]
    inside = (data.t >= start) & (data.t < end)
    x = torch.from_numpy(data.x[inside].astype(np.float32)).reshape(-1, 1, 8, 8) / 255
    labels = torch.from_numpy(data.y[inside]).long()
    with torch.inference_mode():
        logits = model(x)
    scored = {e["metric"]: e for e in events if e["model_id"] == versions[1]["model_id"] and e["window_start"] == start}
    assert scored["loss"]["num_samples"] == int(inside.sum()) > 0
    assert scored["Accuracy(top1)"]["value"] == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    assert scored["loss"]["value"] == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-4)


def test_after_pipeline_results_are_published_once_in_one_transaction(kafka_settings, trained):  # noqa: F811
    store, _, pid, config, versions, _ = trained
    with EvaluatorService(kafka_settings, store) as service:
        count = service.evaluate_pipeline(config, pid)
    assert count > 0
    with EvaluatorService(kafka_settings, store) as service:
        assert service.evaluate_pipeline(config, pid) == 0, "a second run finds them published and does nothing"
    events = [e for e, after_pipeline in published(kafka_settings) if after_pipeline]
    assert len(events) == count == len({key(e) for e in events})
    # models: active -> each model is scored on the windows from its own trigger boundary to the next one's
    assert {e["model_id"] for e in events} == {v["model_id"] for v in versions}
    assert {e["metric"] for e in events} == METRICS
    boundaries = dict(store.query("SELECT trigger_index, toUnixTimestamp64Milli(boundary_event_time) FROM triggers "
                                  "FINAL WHERE pipeline_id = {p:String}", {"p": pid}))  # fmt: skip
    assert {(e["trigger_index"], e["window_start"]) for e in events} == set(boundaries.items())


def test_a_manual_handler_runs_only_when_asked_and_a_rerun_replaces_its_rows(kafka_settings, trained):  # noqa: F811
    store, _, pid, config, versions, _ = trained
    data = config.model_dump(exclude_none=True)
    data["evaluation"]["handlers"].append({
        "name": "later", "execution_time": "manual", "models": "matrix", "datasets": ["dig"],
        "strategy": {"type": "StaticEvalStrategy", "intervals": [["2024-02-01", None]]},  # open-ended, as Modyn's
    })  # fmt: skip
    config = validate_data(data)[0]
    run_until_idle(lambda: EvaluatorService(kafka_settings, store))  # after_training: never the manual handler

    def open_ended() -> list:
        return store.query(
            "SELECT model_id, metric, num_samples FROM evaluations FINAL WHERE pipeline_id = {p:String} "
            "AND toUnixTimestamp64Milli(window_end) = {e:Int64}", {"p": pid, "e": LATEST_MS}
        )  # fmt: skip

    assert open_ended() == []
    with EvaluatorService(kafka_settings, store) as service:
        written = service.evaluate_manually(config, pid, "later")
        assert service.evaluate_manually(config, pid, "later") == written, "a rerun scores the same again"
        with pytest.raises(TrainingError, match=r"no manual evaluation handler 'slices'; manual handlers: \['later'\]"):
            service.evaluate_manually(config, pid, "slices")
    rows = open_ended()
    assert len(rows) == written == len(versions) * len(METRICS), "replaced, not doubled"
    late = generate("digits-drift", samples=600, seed=3).t >= parse_time("2024-02-01")
    assert {r[2] for r in rows} == {int(late.sum())}, "every sample from the start on, to the end of the data"


def test_offset_windows_surround_each_models_own_training_data(kafka_settings, trained):  # noqa: F811
    store, _, pid, config, _, _ = trained
    data = config.model_dump(exclude_none=True)
    data["evaluation"]["handlers"] = [{
        "name": "offsets", "execution_time": "manual", "models": "training", "datasets": ["dig"],
        "strategy": {"type": "OffsetEvalStrategy", "offsets": ["0s", "-inf", "inf"]},
    }]  # fmt: skip
    config = validate_data(data)[0]
    with EvaluatorService(kafka_settings, store) as service:
        service.evaluate_manually(config, pid, "offsets")
    rows = store.query(
        "SELECT trigger_index, toUnixTimestamp64Milli(window_start), toUnixTimestamp64Milli(window_end), num_samples "
        "FROM evaluations FINAL WHERE pipeline_id = {p:String} AND metric = 'loss' ORDER BY trigger_index, 2",
        {"p": pid},
    )
    t = np.sort(generate("digits-drift", samples=600, seed=3).t)
    first, boundary, last = int(t[0]), int(t[299]), int(t[599])  # DataAmountTrigger(300): 300 samples a trigger
    assert rows == [
        (0, first, boundary + 1, 300),  # '0s': its own data; '-inf' holds nothing before it, so no row
        (0, boundary + 1, LATEST_MS, 300),  # 'inf': all after it
        (1, EARLIEST_MS, int(t[300]), 300),  # '-inf': all before its first sample
        (1, int(t[300]), last + 1, 300),  # '0s'; 'inf' holds nothing after the stream's last sample
    ]


def test_a_model_is_scored_only_once_its_windows_are_complete(kafka_settings, clickhouse_dsn, tmp_path):
    # The evaluator used to score a model on whatever part of a window was ingested when the model arrived,
    # so four runs of one pipeline gave 168 to 216 rows. Now the model waits for the watermark.
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    names, codec = TopicNames(kafka_settings.namespace), EventCodec()
    data = generate("digits-drift", samples=600, seed=3)
    topic = names.samples("part")
    TopicAdmin(kafka_settings).ensure([sample_topic_spec(names, "part", 1)])

    def publish(indices, end: bool) -> None:
        with EventProducer(kafka_settings) as producer:
            for i in indices:
                sample = {"dataset": "part", "key": f"{i:06d}", "event_time": int(data.t[i]),
                          "label": int(data.y[i]), "payload": data.x[i].tobytes()}  # fmt: skip
                producer.produce(topic, codec.encode("SampleEvent", sample), key=sample["key"], partition=0)
            if end:
                marker = {"dataset": "part", "replay_id": "r", "partition": 0, "num_samples": 600,
                          "max_event_time": int(data.t[-1]), "produced_at": 0}  # fmt: skip
                producer.produce(topic, codec.encode("EndOfStream", marker), partition=0)

    def ingest(until: int) -> None:
        with IngestService(kafka_settings, store, max_batch=500, max_wait_s=0.1) as service:
            deadline = time.monotonic() + 60
            while sum(s.samples_ingested for s in service.partition_states()) < until or (
                until == 600 and not all(s.end_of_stream for s in service.partition_states())
            ):
                assert time.monotonic() < deadline, "ingest did not catch up"
                service.step()

    publish(range(400), end=False)  # two thirds of the stream: the last window is not complete
    config = digits_pipeline("part")
    pid = register_pipeline(config, kafka_settings, store)
    ingest(400)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    run_until_idle(lambda: TriggerService(kafka_settings, store))
    run_until_idle(lambda: SelectorService(kafka_settings, store, artifacts))
    run_until_idle(lambda: TrainerService(kafka_settings, store, artifacts))
    assert len(read_all(kafka_settings, names.models)) == 1  # trigger 0 fired and trained; trigger 1 not yet

    with EvaluatorService(kafka_settings, store) as evaluator:
        deadline = time.monotonic() + 60
        while not evaluator.processor.holding:  # it has read the model and found its windows incomplete
            assert time.monotonic() < deadline, "the evaluator never read the model event"
            evaluator.step()
        assert evaluator.done == 0 and store.query("SELECT count() FROM evaluations")[0][0] == 0

        publish(range(400, 600), end=True)
        ingest(600)
        deadline = time.monotonic() + 60
        while evaluator.done < 1:
            assert time.monotonic() < deadline, "the model was not scored once its windows were complete"
            evaluator.step()
    windows = [(parse_time(a), parse_time(b)) for a, b in EVAL_INTERVALS]
    scored = dict(store.query(
        "SELECT toUnixTimestamp64Milli(window_start), num_samples FROM evaluations FINAL "
        "WHERE pipeline_id = {p:String} AND trigger_index = 0 AND metric = 'loss'", {"p": pid}))  # fmt: skip
    assert scored == {start: int(((data.t >= start) & (data.t < end)).sum()) for start, end in windows}


def test_later_models_are_scored_on_inputs_kept_from_the_first_and_score_the_same(kafka_settings, trained):  # noqa: F811
    store, _, pid, config, _, _ = trained
    with (
        EvaluatorService(kafka_settings, store) as keeping,
        EvaluatorService(kafka_settings, store, cache_bytes=0) as not_,
    ):
        models = keeping._stored_models(pid)
        kept = [keeping.evaluate(config, event, "after_training") for event in models]
        read = [not_.evaluate(config, event, "after_training") for event in models]
        assert len(keeping.inputs.spans_read) == 1, "the windows were read once, for the first model"
        assert len(not_.inputs.spans_read) == len(models), "without room to keep them, once per model"
    values = [[(r["model_id"], r["window_start"], r["metric"], r["value"], r["num_samples"]) for r in rows]
              for rows in kept]  # fmt: skip
    assert len(models) > 1 and values == [
        [(r["model_id"], r["window_start"], r["metric"], r["value"], r["num_samples"]) for r in rows] for rows in read
    ]
