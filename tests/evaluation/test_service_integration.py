"""The evaluator service on real Kafka and ClickHouse (CPU): every metric exactly once, and right."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modyn_stream.datasets.generators import generate
from modyn_stream.evaluation.service import AFTER_PIPELINE, EvaluatorService
from modyn_stream.events import EventCodec
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.timeutil import parse_time
from modyn_stream.training.model_store import load_model
from modyn_stream.training.models import build_model
from tests.selection.test_service_integration import crashes_at, read_all, run_until_idle
from tests.training.test_service_integration import EVAL_INTERVALS, trained  # noqa: F401 (a fixture)

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
