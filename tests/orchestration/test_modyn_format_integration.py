"""A pipeline in Modyn's own format (snippets, infrastructure fields, Modyn's layouts) run end to end."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from modyn_stream.datasets import generate
from modyn_stream.timeutil import LATEST_MS, parse_time
from tests.orchestration.test_run_integration import modyn, rows, run_example

pytestmark = pytest.mark.integration
MODYN_FORMAT = Path(__file__).resolve().parents[1] / "pipeline" / "modyn" / "periodic_digits.yaml"
DAY = 86_400_000


def test_a_modyn_format_pipeline_runs_with_its_snippets_read_and_its_notes_printed(kafka_settings, tmp_path):
    data = generate("digits-drift", samples=1500, seed=0)
    np.savez(tmp_path / "digits.npz", x=data.x.astype(np.float32) / 255, y=data.y, t=data.t)  # float32 payloads
    config = yaml.safe_load(MODYN_FORMAT.read_text())
    config["pipeline"]["name"] = "modyn-format"
    config["trigger"]["num_samples"] = 500
    config["replay"] = {"path": str(tmp_path / "digits.npz"), "partitions": 2}
    pipeline = tmp_path / "modyn-format.yaml"
    pipeline.write_text(yaml.safe_dump(config, sort_keys=False))

    done = modyn("run", str(pipeline), "--runs", str(tmp_path), bootstrap=kafka_settings.bootstrap_servers,
                 namespace=kafka_settings.namespace)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "modyn-format: 3 triggers, 3 models, 3 evaluated" in done.stdout, done.stdout
    assert "note: training.gpus: training runs on one device" in done.stdout
    assert "note: data.bytes_parser_function: read as decoder raw" in done.stdout

    report = tmp_path / "modyn-format" / "report"
    sizes = [int(size) for _, size in rows(report / "triggers.csv", "trigger", "training_set")]
    assert sizes[0] == 500, "warmup_triggers: 1 -> the first trigger trains on all its data"
    labels = data.y[np.lexsort((np.arange(len(data.t)), data.t))]  # in event-time order
    for index, size in enumerate(sizes[1:], start=1):  # LabelBalanced, force_column_balancing: as the smallest
        counts = np.bincount(labels[500 * index : 500 * (index + 1)])
        present = counts[counts > 0]
        assert size == len(present) * min(present.min(), 250 // len(present)), (index, size, counts)
    # Periodic every 5d from 2024-01-01 to 2024-02-01, interval (-2d; +inf]: an excluded left bound, an open end
    points = range(parse_time(1704067200), parse_time(1706745600) + 1, 5 * DAY)
    expected = {(str(p - 2 * DAY + 1), str(LATEST_MS)) for p in points}
    scored = rows(report / "evaluations.csv", "trigger", "window_start", "window_end", "metric")
    assert {(s, e) for _, s, e, _ in scored} == expected, "only the after_training handler: the manual one waits"
    assert {m for *_, m in scored} == {"Accuracy(top1)", "F1Score(macro)", "loss"}
    assert len(scored) == 3 * len(expected) * 3, "models: matrix -> every model on every window"

    # the manual handler runs only when asked, on the run's stored models
    evaluated = modyn("evaluate", str(pipeline), "--handler", "later", "--runs", str(tmp_path),
                      bootstrap=kafka_settings.bootstrap_servers, namespace=kafka_settings.namespace)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "handler 'later': 9 metric values" in evaluated.stdout, "3 models x 3 metrics on its one window"


def test_the_yearbook_example_in_modyns_format_retrains_yearly_and_its_first_model_ages(kafka_settings, tmp_path):
    config = yaml.safe_load((MODYN_FORMAT.parents[3] / "examples" / "yearbook_modyn.yaml").read_text())
    config["replay"]["samples"] = 4200
    config["trigger"] |= {"every": "12d", "fire_on_end_of_stream": True}  # 7 "years" of 12 days, the last too
    config["evaluation"]["handlers"][0]["strategy"]["eval_every"] = "12d"
    pipeline = tmp_path / "yearbook.yaml"
    pipeline.write_text(yaml.safe_dump(config, sort_keys=False))
    report = run_example(kafka_settings, tmp_path, pipeline, "yearbook-modyn")
    assert len(rows(report / "triggers.csv", "trigger")) == 7
    accuracy = {(int(i), int(s)): float(v) for i, s, m, v in rows(report / "evaluations.csv", "trigger", "window_start",
                                                               "metric", "value") if m == "Accuracy(top1)"}  # fmt: skip
    slices = sorted({s for _, s in accuracy})
    assert len(slices) == 7 and len(accuracy) == 49, "every model on every slice (models: matrix)"
    assert accuracy[(0, slices[0])] > 0.8, "the first model knows its own years"
    assert accuracy[(0, slices[-1])] < accuracy[(0, slices[0])] - 0.2, "and forgets as the classes drift"
    assert accuracy[(6, slices[-1])] > accuracy[(0, slices[-1])], "the model of the last years knows them better"


def test_the_criteo_example_in_modyns_format_trains_dlrm_daily_and_scores_clicks(kafka_settings, tmp_path):
    config = yaml.safe_load((MODYN_FORMAT.parents[3] / "examples" / "criteo_dlrm_modyn.yaml").read_text())
    config["replay"]["samples"] = 6000  # 24 days of 250 clicks
    config["training"]["epochs_per_trigger"] = 1
    config["trigger"] |= {"every": "6d", "fire_on_end_of_stream": True}  # 4 "weeks", the last too
    config["evaluation"]["handlers"][0]["strategy"]["eval_every"] = "6d"
    pipeline = tmp_path / "criteo.yaml"
    pipeline.write_text(yaml.safe_dump(config, sort_keys=False))
    report = run_example(kafka_settings, tmp_path, pipeline, "criteo-dlrm-modyn")
    triggers = rows(report / "triggers.csv", "trigger", "training_set")
    assert len(triggers) == 4 and sum(int(n) for _, n in triggers) == 6000, "each day's clicks in one trigger"
    scores = rows(report / "evaluations.csv", "trigger", "window_start", "metric", "value")
    assert {m for _, _, m, _ in scores} == {"Accuracy(top1)", "RocAuc"}
    own = [float(v) for t, s, m, v in scores if m == "RocAuc" and int(s) == int(t) * 6 * DAY]
    assert len(own) == 4 and all(0.6 < auc <= 1 for auc in own), "each model ranks its own weeks' clicks"
    first_on_last = [float(v) for t, s, m, v in scores if m == "RocAuc" and t == "0" and int(s) == 18 * DAY]
    assert first_on_last[0] < own[0] - 0.2, "and the first model loses them as the click model shifts"
