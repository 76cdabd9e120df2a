"""The drift and performance examples end to end: each retrains at the phase changes of the drifting digits,
and the same stream gives the same triggers however it is partitioned."""

import numpy as np
import pytest
import yaml

from modyn_stream.datasets import generate
from modyn_stream.datasets.generators import DAY_MS, DEFAULT_START_MS
from tests.orchestration.test_run_integration import EXAMPLES, rows, run_example

pytestmark = pytest.mark.integration


def run_partitioned(kafka_settings, tmp_path, example: str, layouts: tuple[int, ...]) -> tuple[dict, list]:
    """The example's config, and its report directories when replayed over each number of partitions."""
    config = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    reports = []
    for partitions in layouts:
        config["replay"]["partitions"] = partitions
        path = tmp_path / f"{example}-{partitions}.yaml"
        path.write_text(yaml.safe_dump(config))
        reports.append(run_example(kafka_settings, tmp_path / str(partitions), path, config["pipeline"]["name"]))
    return config, reports


def test_the_drift_example_retrains_at_each_phase_change_however_the_stream_is_partitioned(kafka_settings, tmp_path):
    config, reports = run_partitioned(kafka_settings, tmp_path, "digits_drift_trigger", (4, 2))
    columns = ("trigger", "boundary", "new_samples", "training_set", "reason")
    triggers = [rows(report / "triggers.csv", *columns) for report in reports]
    assert triggers[0] == triggers[1], "the same decisions on 4 and on 2 partitions"
    assert rows(reports[0] / "decisions.csv", "evaluation", "value") == rows(
        reports[1] / "decisions.csv", "evaluation", "value"
    )

    times, changes = phase_changes(config)
    every = config["trigger"]["evaluation_interval_data_points"]
    boundaries = [int(np.searchsorted(times, int(b), side="right")) - 1 for _, b, *_ in triggers[0]]
    assert boundaries[0] == every - 1 and "first evaluation" in triggers[0][0][4]
    assert len(boundaries) == len(changes) + 1
    for change, boundary in zip(changes, boundaries[1:], strict=True):  # within an interval of the change
        assert 0 <= boundary - change < 2 * every, "one retraining per phase change, as soon as it shows"
    assert all("mmd" in reason and "fired" in reason for *_, reason in triggers[0][1:])
    fired = [row for row in rows(reports[0] / "decisions.csv", "fired", "trigger") if row[0] == "True"]
    assert [int(t) for _, t in fired] == list(range(len(boundaries)))


def phase_changes(config) -> tuple[np.ndarray, np.ndarray]:
    """The replayed stream's event times in order, and the index of the first sample of each new phase."""
    replay = config["replay"]
    times = np.sort(generate(replay["generator"], samples=replay["samples"], seed=replay["seed"]).t)
    phase = (times - DEFAULT_START_MS) * 4 // (60 * DAY_MS)
    return times, np.flatnonzero(np.diff(phase)) + 1


def test_the_performance_example_retrains_once_the_accuracy_of_a_new_phase_shows(kafka_settings, tmp_path):
    config = yaml.safe_load((EXAMPLES / "digits_performance_trigger.yaml").read_text())
    report = run_example(kafka_settings, tmp_path, EXAMPLES / "digits_performance_trigger.yaml",
                         "digits-performance-trigger")  # fmt: skip
    times, changes = phase_changes(config)
    every = config["trigger"]["evaluation_interval_data_points"]
    triggers = rows(report / "triggers.csv", "boundary", "reason")
    boundaries = [int(np.searchsorted(times, int(b), side="right")) - 1 for b, _ in triggers]
    for change in changes:  # the first interval of each new phase ends in a trigger: the old model fails it
        end = change + (every - change % every) - 1  # the interval holding the change
        assert end in boundaries or end + every in boundaries, (change, boundaries)
    decisions = rows(report / "decisions.csv", "evaluation", "fired", "model", "value")
    for _, fired, _, value in decisions[1:]:
        assert (fired == "True") == (float(value) <= 0.85), "fires exactly when accuracy is at or below 0.85"
    assert all(reason.startswith("PerformanceTrigger") for _, reason in triggers)


def test_the_cost_example_weighs_waiting_misclassifications_against_a_fixed_cost_alike_on_any_layout(
    kafka_settings, tmp_path
):
    reports = run_partitioned(kafka_settings, tmp_path, "tabular_cost_trigger", (4, 1))[1]
    decisions = [rows(r / "decisions.csv", "evaluation", "phase", "fired", "value", "threshold") for r in reports]
    assert decisions[0] == decisions[1], "a fixed cost model: the same decisions on 4 partitions and on 1"
    detections = [d for d in decisions[0] if d[1] == "detection"]
    assert all((fired == "True") == (float(value) >= float(cost)) for _, _, fired, value, cost in detections)
    assert 0 < sum(d[2] == "True" for d in detections) < len(detections), "it weighs: some fire, some wait"
    reasons = [reason for (reason,) in rows(reports[0] / "triggers.csv", "reason")]
    assert all("linear: 40 s + 0 s/sample" in r for r in reasons[2:]), "the cost model used is on each trigger"
