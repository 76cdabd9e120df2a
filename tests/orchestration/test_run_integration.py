"""`modyn-stream run` end to end on real Kafka and chDB (each run its own process: chDB opens one directory each)."""

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modyn_stream.artifacts import sha256_file
from modyn_stream.datasets import generate
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.timeutil import parse_time
from modyn_stream.training.model_store import load_model
from modyn_stream.training.trained_samples import read_trained_samples
from tests.replay.test_replay_integration import read_topic

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WEEK = 7 * 86_400_000


def scaled_example(tmp_path: Path, example: str, change=lambda config: None) -> Path:
    """The example with 3,000 samples and one epoch per trigger."""
    config = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    config["replay"]["samples"] = 3000
    config["training"]["epochs_per_trigger"] = 1
    change(config)
    path = tmp_path / f"{example}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def small_pipeline(tmp_path: Path) -> Path:
    def change(config):
        config["pipeline"]["name"] = "small-digits"
        config["trigger"]["num_samples"] = 1000

    return scaled_example(tmp_path, "digits_data_amount", change)


def modyn(*args, bootstrap: str | None = None, namespace: str | None = None, timeout: float = 280):
    kafka = ["--bootstrap", bootstrap, "--namespace", namespace] if bootstrap else []
    command = [sys.executable, "-m", "modyn_stream", *args, *kafka]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def rows(path: Path, *columns: str) -> list[tuple]:
    with open(path, newline="") as handle:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(handle)]


def manifests(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.glob("artifacts/*/training-sets/*"))}


def test_run_trains_evaluates_reports_and_reproduces_itself(kafka_settings, tmp_path):
    pipeline = small_pipeline(tmp_path)
    runs = []
    bootstrap, namespace = kafka_settings.bootstrap_servers, kafka_settings.namespace
    for name in ("a", "b"):
        done = modyn(
            "run", str(pipeline), "--runs", str(tmp_path / name), bootstrap=bootstrap, namespace=namespace + name
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "small-digits: 3 triggers, 3 models, 3 evaluated" in done.stdout
        runs.append(tmp_path / name / "small-digits")
    report = runs[0] / "report"
    expected = {
        "report.html",
        "evaluations.csv",
        "triggers.csv",
        "matrix_digits_Accuracy_top1.csv",
        "heatmap_digits_Accuracy_top1.png",
        "active_digits_Accuracy_top1.csv",
        "active_digits_Accuracy_top1.png",
    }
    assert expected <= {p.name for p in report.iterdir()}
    evaluations = rows(report / "evaluations.csv", "trigger", "window_start", "metric", "value", "samples")
    assert len(evaluations) == 3 * 12 * 3, "3 models x 12 five-day windows x (accuracy, F1, loss)"
    assert {e[2] for e in evaluations} == {"Accuracy(top1)", "F1Score(macro)", "loss"}

    # the same seed twice: the same triggers, byte-identical manifests, the same metrics
    other = runs[1] / "report"
    assert rows(report / "triggers.csv", "trigger", "boundary", "new_samples", "training_set") == rows(
        other / "triggers.csv", "trigger", "boundary", "new_samples", "training_set"
    )
    assert manifests(runs[0]) == manifests(runs[1]) and len(manifests(runs[0])) == 6  # 3 predicates, 3 expanded
    assert evaluations == rows(other / "evaluations.csv", "trigger", "window_start", "metric", "value", "samples")

    # training on new data works: after the drift the latest model beats the first one
    accuracy = {(int(t), int(w)): float(v) for t, w, m, v, _ in evaluations if m == "Accuracy(top1)"}
    late = sorted({w for _, w in accuracy})[-3:]
    first, last = (sum(accuracy[(m, w)] for w in late) / 3 for m in (0, 2))
    assert last > first + 0.2, (first, last)
    active = rows(report / "active_digits_Accuracy_top1.csv", "trigger", "window_start", "value")
    assert {int(t) for t, _, _ in active} == {0, 1}, "each window scored by the latest model trained before it"
    for trigger, window, value in active:
        if trigger == "1":
            assert float(value) >= accuracy[(0, int(window))], "the retrained model serves better than the first"

    compared = modyn("report", "--compare", str(runs[0]), str(runs[1]), "--runs", str(tmp_path))
    assert compared.returncode == 0, compared.stderr[-3000:]
    mean = sum(float(v) for _, _, v in active) / len(active)
    assert compared.stdout.count(f"{mean:.4f}") == 2, compared.stdout  # both runs, same mean active accuracy
    assert str(runs[1]) in compared.stdout and (tmp_path / "compare" / "compare.png").stat().st_size > 0


def test_a_run_without_kafka_or_with_a_broken_config_stops_at_once_with_one_line(kafka_settings, tmp_path):
    pipeline = small_pipeline(tmp_path)
    done = modyn("run", str(pipeline), "--runs", str(tmp_path), bootstrap="127.0.0.1:1", namespace="x", timeout=60)
    assert done.returncode != 0 and "127.0.0.1:1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text(pipeline.read_text().replace("num_samples: 1000", "num_sample: 1000"))
    done = modyn("run", str(broken), "--runs", str(tmp_path), bootstrap=kafka_settings.bootstrap_servers,
                 namespace="x", timeout=60)  # fmt: skip
    assert done.returncode != 0 and "trigger.num_sample: unknown field (did you mean 'num_samples'?)" in done.stderr
    assert not (tmp_path / "small-digits").exists(), "nothing started"

    missing = tmp_path / "missing.yaml"  # the data is read while the services start: its error still ends the run
    missing.write_text(pipeline.read_text().replace("generator: digits-drift", "path: nowhere.npz"))
    done = modyn("run", str(missing), "--runs", str(tmp_path), bootstrap=kafka_settings.bootstrap_servers,
                 namespace="x", timeout=60)  # fmt: skip
    assert done.returncode != 0 and "nowhere.npz" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def run_example(kafka_settings, tmp_path: Path, pipeline: Path, name: str) -> Path:
    done = modyn("run", str(pipeline), "--runs", str(tmp_path), bootstrap=kafka_settings.bootstrap_servers,
                 namespace=kafka_settings.namespace)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(rf"{name}: (\d+) triggers, \1 models, \1 evaluated", done.stdout), done.stdout
    return tmp_path / name / "report"


def test_the_time_trigger_example_retrains_weekly_and_scores_each_model_on_the_data_it_serves(kafka_settings, tmp_path):
    report = run_example(kafka_settings, tmp_path, scaled_example(tmp_path, "digits_time_trigger"), "digits-time")
    t = generate("digits-drift", samples=3000, seed=0).t
    edges = range(parse_time("2024-01-01") + WEEK, int(t.max()) + 1, WEEK)
    expected = [(str(int(t[t < edge].max())), str(int(((t >= edge - WEEK) & (t < edge)).sum()))) for edge in edges]
    triggers = rows(report / "triggers.csv", "trigger", "boundary", "new_samples", "training_set")
    assert [(b, n) for _, b, n, _ in triggers] == expected, "one trigger per completed week, at its last sample"
    assert all(int(size) <= 5000 for *_, size in triggers), "selection limit"
    # models: active, BetweenTwoTriggers -> model i is scored on the data from its boundary to the next one's
    scored = rows(report / "evaluations.csv", "trigger", "window_start", "metric")
    assert sorted(scored) == sorted((i, b, m) for i, b, _, _ in triggers for m in ("Accuracy(top1)", "loss"))
    active = rows(report / "active_digits_Accuracy_top1.csv", "trigger", "window_start")
    assert active == [(i, b) for i, b, _, _ in triggers]


def test_the_tabular_example_trains_an_mlp_on_label_balanced_sets(kafka_settings, tmp_path):
    def change(config):
        config["trigger"]["subtriggers"]["amount"]["num_samples"] = 1000

    report = run_example(kafka_settings, tmp_path, scaled_example(tmp_path, "tabular_drift", change), "tabular-drift")
    triggers = rows(report / "triggers.csv", "trigger", "new_samples", "training_set", "final_loss")
    assert len(triggers) >= 8, "the weekly subtrigger fires at least once a week (AtLeastN n=1)"
    seen = 0
    for _, new, size, loss in triggers:
        seen += int(new)
        assert abs(int(size) - seen / 2) <= 2, "LabelBalanced ratio 50 of all data so far"
        assert float(loss) > 0
    evaluations = rows(report / "evaluations.csv", "trigger", "window_start", "metric", "value")
    by_metric = {m: [float(v) for _, _, metric, v in evaluations if metric == m] for m in ("Accuracy(top1)", "RocAuc")}
    assert len(by_metric["Accuracy(top1)"]) == len(by_metric["RocAuc"]) >= len(triggers) * 10
    assert all(0 <= v <= 1 for v in by_metric["RocAuc"])


def test_loss_downsampling_at_half_trains_half_of_every_batch_end_to_end(kafka_settings, tmp_path):
    def change(config):
        config["pipeline"]["name"] = "digits-loss"
        config["trigger"]["num_samples"] = 1000
        config["training"]["epochs_per_trigger"] = 2
        config["selection_strategy"]["downsampling_config"] = {"strategy": "Loss", "ratio": 50}  # batch then sample

    report = run_example(kafka_settings, tmp_path, scaled_example(tmp_path, "digits_downsampling", change),
                         "digits-loss")  # fmt: skip
    triggers = rows(report / "triggers.csv", "training_set", "samples_trained", "downsample_s")
    assert [int(size) for size, _, _ in triggers] == [1000, 2000, 3000]
    for size, trained, downsample_s in triggers:
        kept = int(size) // 64 * 32  # half of each full batch of 64, trained in full batches of 64
        assert int(trained) == 2 * (kept // 64 * 64) and float(downsample_s) > 0
    record = read_trained_samples(sorted(tmp_path.rglob("trained-samples/trigger-000002.arrow"))[0])
    assert record.num_rows == int(triggers[2][1]) and len(set(record["weight"].to_pylist())) > 1, "1 / (N p)"


def test_the_downsampling_example_trains_each_trigger_on_half_of_its_set_and_says_so(kafka_settings, tmp_path):
    def change(config):
        config["trigger"]["num_samples"] = 1000
        config["training"]["epochs_per_trigger"] = 2

    example = scaled_example(tmp_path, "digits_downsampling", change)
    report = run_example(kafka_settings, tmp_path, example, "digits-downsampling")
    triggers = rows(report / "triggers.csv", "training_set", "samples_trained", "train_s", "downsample_s")
    assert len(triggers) == 3
    for size, trained, train_s, downsample_s in triggers:
        per_epoch = int(trained) / 2  # about half of each class, in full batches of 64 (drop_last_batch)
        assert per_epoch % 64 == 0 and int(size) / 2 - 10 - 64 < per_epoch <= int(size) / 2, (size, trained)
        assert 0 < float(downsample_s) < float(train_s), "scoring the whole set is part of training"


def test_the_rho_loss_example_trains_an_il_model_on_each_trigger_s_holdout_then_half_of_each_batch(
    kafka_settings, tmp_path
):
    def change(config):
        config["trigger"]["num_samples"] = 1000

    example = scaled_example(tmp_path, "digits_rho_loss", change)
    report = run_example(kafka_settings, tmp_path, example, "digits-rho-loss")
    triggers = rows(report / "triggers.csv", "training_set", "samples_trained")
    assert [int(size) for size, _ in triggers] == [1000, 2000, 3000], "all data so far"
    kept = [int(size) // 64 * 32 for size, _ in triggers]  # half of each full batch, in full batches of 64
    assert [int(trained) for _, trained in triggers] == [k // 64 * 64 for k in kept]
    il_models = sorted(tmp_path.rglob("il-models/trigger-*.pt"))
    assert [p.name for p in il_models] == [f"trigger-{i:06d}.pt" for i in range(3)]
    holdouts = [load_model(p.as_uri())[1]["holdout_samples"] for p in il_models]
    assert all(230 < n < 370 for n in holdouts), "30% of each trigger's 1,000 new samples, not of its whole set"
    versions = sorted(tmp_path.rglob("models/trigger-*.pt"))
    recorded = [load_model(p.as_uri())[1]["il_models"][0]["sha256"] for p in versions]
    assert recorded == [sha256_file(p) for p in il_models], "each model version names its IL model"


def test_a_fresh_run_deletes_the_discarded_runs_topics_and_groups(kafka_settings, tmp_path):
    """Every `make run` starts fresh: without this, each would leave its namespace on the broker for good."""
    from confluent_kafka import Consumer, TopicPartition

    from modyn_stream.kafka.producer import EventProducer
    from modyn_stream.kafka.topics import TopicAdmin, TopicNames, TopicSpec, project_topic_specs
    from modyn_stream.orchestration.run import run_state

    admin = TopicAdmin(kafka_settings)
    old, neighbour = f"{kafka_settings.namespace}-run-0001", f"{kafka_settings.namespace}-run-00011"
    admin.ensure([*project_topic_specs(TopicNames(old)), TopicSpec(f"{old}.samples.d", 2)])
    admin.ensure([TopicSpec(f"{neighbour}.samples.d", 1)])
    with EventProducer(kafka_settings) as producer:
        producer.produce(f"{old}.samples.d", b"x", partition=0)
        producer.flush()
    group = Consumer({**kafka_settings.client_config(), "group.id": f"{old}.ingest"})
    group.commit(offsets=[TopicPartition(f"{old}.samples.d", 0, 1)], asynchronous=False)
    group.close()
    run_dir = tmp_path / "runs" / "p"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"namespace": old, "replayed": True}))
    (run_dir / "metadata").mkdir()

    state = run_state(run_dir, kafka_settings, fresh=True)

    assert state["namespace"].startswith(f"{kafka_settings.namespace}-run-") and state["namespace"] != old
    assert not state["replayed"] and not (run_dir / "metadata").exists()
    left = {t.name for t in admin.list(kafka_settings.namespace)}
    assert not {t for t in left if t.startswith(f"{old}.")}, left
    assert f"{neighbour}.samples.d" in left, "a namespace that merely starts with the same letters is kept"
    groups = admin._admin.list_consumer_groups().result().valid
    assert f"{old}.ingest" not in {g.group_id for g in groups}
    assert run_state(run_dir, kafka_settings, fresh=False) == state, "without fresh the run resumes"


def test_ctrl_c_during_the_replay_lets_it_finish_and_the_resumed_run_does_not_publish_again(kafka_settings, tmp_path):
    pipeline = small_pipeline(tmp_path)
    script = f"""
import json, sys
from pathlib import Path
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.orchestration.run import run_pipeline
from modyn_stream.pipeline.loading import load_pipeline
settings = KafkaSettings(bootstrap_servers={kafka_settings.bootstrap_servers!r}, namespace={kafka_settings.namespace!r})
stopped = sys.argv[1] == "stop"
result = run_pipeline(load_pipeline(Path({str(pipeline)!r})), settings, Path({str(tmp_path)!r}), stop=lambda: stopped)
state = json.loads((result.run_dir / "run.json").read_text())
print(json.dumps({{"notes": result.progress.notes, "replayed": result.progress.replayed,
                  "triggers": result.progress.triggers, "state": state}}))
"""

    def run(mode: str) -> dict:
        done = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, timeout=280)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    interrupted = run("stop")  # as if Ctrl-C came at once: the stages stop, the replay does not
    assert interrupted["notes"] == ["interrupted: run again to resume"]
    assert interrupted["replayed"] == 3000 and interrupted["state"]["replayed"]

    resumed = run("go")
    assert resumed["notes"] == [] and resumed["triggers"] == 3 and resumed["replayed"] == 0, "nothing replayed again"
    topic = TopicNames(resumed["state"]["namespace"]).samples("digits")
    events = read_topic(kafka_settings, topic, 4)
    assert sum(e.name == "SampleEvent" for items in events.values() for e in items) == 3000


def test_run_fresh_never_deletes_outside_its_runs_directory(kafka_settings, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")

    def escape(config):
        config["pipeline"]["name"] = "../victim"

    pipeline = scaled_example(tmp_path, "digits_data_amount", escape)
    done = modyn("run", str(pipeline), "--fresh", "--runs", str(tmp_path / "runs"),
                 bootstrap=kafka_settings.bootstrap_servers, namespace="x", timeout=60)  # fmt: skip
    assert done.returncode != 0 and "pipeline.name: '../victim' is not a safe name" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (victim / "precious.txt").read_text() == "keep me"
