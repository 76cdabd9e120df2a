"""The drift example end to end: MMD on the current model's embeddings retrains at each phase change of the
drifting digits, and the same stream gives the same triggers however it is partitioned."""

import numpy as np
import pytest
import yaml

from modyn_stream.datasets import generate
from modyn_stream.datasets.generators import DAY_MS, DEFAULT_START_MS
from tests.orchestration.test_run_integration import EXAMPLES, rows, run_example

pytestmark = pytest.mark.integration


def test_the_drift_example_retrains_at_each_phase_change_however_the_stream_is_partitioned(kafka_settings, tmp_path):
    config = yaml.safe_load((EXAMPLES / "digits_drift_trigger.yaml").read_text())
    reports = []
    for partitions in (4, 2):
        config["replay"]["partitions"] = partitions
        path = tmp_path / f"drift-{partitions}.yaml"
        path.write_text(yaml.safe_dump(config))
        reports.append(run_example(kafka_settings, tmp_path / str(partitions), path, "digits-drift-trigger"))
    columns = ("trigger", "boundary", "new_samples", "training_set", "reason")
    triggers = [rows(report / "triggers.csv", *columns) for report in reports]
    assert triggers[0] == triggers[1], "the same decisions on 4 and on 2 partitions"
    assert rows(reports[0] / "drift.csv", "evaluation", "distance") == rows(
        reports[1] / "drift.csv", "evaluation", "distance"
    )

    replay = config["replay"]
    times = np.sort(generate(replay["generator"], samples=replay["samples"], seed=replay["seed"]).t)
    phase = (times - DEFAULT_START_MS) * 4 // (60 * DAY_MS)
    every = config["trigger"]["evaluation_interval_data_points"]
    boundaries = [int(np.searchsorted(times, int(b), side="right")) - 1 for _, b, *_ in triggers[0]]
    assert boundaries[0] == every - 1 and "first evaluation" in triggers[0][0][4]
    changes = np.flatnonzero(np.diff(phase)) + 1  # the first sample of each new phase
    assert len(boundaries) == len(changes) + 1
    for change, boundary in zip(changes, boundaries[1:], strict=True):  # within an interval of the change
        assert 0 <= boundary - change < 2 * every, "one retraining per phase change, as soon as it shows"
    assert all("mmd" in reason and "drift" in reason for *_, reason in triggers[0][1:])
    fired = [row for row in rows(reports[0] / "drift.csv", "fired", "trigger") if row[0] == "True"]
    assert [int(t) for _, t in fired] == list(range(len(boundaries)))
