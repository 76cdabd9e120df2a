"""DataDriftTrigger's decisions over an in-memory sample order: windows as Modyn builds them, warmup,
calibration, the vote, waiting for the model of the last trigger, and the recorded state."""

from collections import deque

import numpy as np
import pyarrow as pa
import yaml

from modyn_stream.pipeline.loading import validate_data
from modyn_stream.triggers.batched import WAITING, PolicyState
from modyn_stream.triggers.drift import trigger
from modyn_stream.triggers.drift.metrics import measure
from modyn_stream.triggers.drift.trigger import DriftDetector
from modyn_stream.triggers.policies import Boundary
from tests.pipeline.test_config import DIGITS
from tests.triggers.decisions import decide_all


class Index:
    """The trigger policies' view of a stream: samples 1..n, one per millisecond, keys k001, k002, ..."""

    def __init__(self, n: int) -> None:
        self.order = [Boundary(i, f"k{i:03d}") for i in range(1, n + 1)]

    def nth_after(self, after, n):
        later = [b for b in self.order if b > after]
        return later[n - 1] if len(later) >= n else None

    def last_before(self, after, event_time):
        found = [b for b in self.order if b > after and b.event_time < event_time]
        return found[-1] if found else None

    def complete_before(self, event_time):
        return event_time <= self.order[-1].event_time

    def window(self, upto, *, after=None, last=None, since=None, labelled=False):
        rows = [b for b in self.order if b <= upto and (after is None or b > after)]
        rows = [b for b in rows if since is None or b.event_time >= since]
        rows = rows[-last:] if last is not None else rows
        labels = [b.event_time % 2 for b in rows]
        return pa.table({"key": [b.key for b in rows], "label": labels, "t": [b.event_time for b in rows]})


class Vectors:
    """Sample i's vector is values[i - 1]; `tagged`: (values[i - 1], i), so `keys` tells an array's samples by its
    second column (`measured` strips it before measuring). Remembers the samples of each read."""

    def __init__(self, values, models=(0, 1, 2, 3, 4, 5, 6, 7, 8), tagged=False) -> None:
        self.values, self.models, self.made, self.tagged = values, set(models), [], tagged

    def model(self, pid, config, index):
        return object() if index in self.models else None

    def vectors(self, pid, config, rows, model_index):
        keys = rows["key"].to_pylist()
        array = np.array([[self.values[int(k[1:]) - 1], int(k[1:])][: 1 + self.tagged] for k in keys], np.float64)
        self.made.append(keys)
        return array, np.ones(len(keys), bool)

    @staticmethod
    def keys(array) -> list[str]:
        return [f"k{int(i):03d}" for i in array[:, 1]]

    def measured(self, compared: list):
        """`measure` on the values alone, noting the samples of the windows it compares in `compared`."""

        def measured(metric, ref, cur, seed, cache=None, chunks=None):
            compared.append((self.keys(ref), self.keys(cur)))
            return measure(metric, ref[:, :1], cur[:, :1], seed, cache)

        return measured


def config_with(trigger: dict):
    data = yaml.safe_load(DIGITS.read_text())
    data["trigger"] = trigger
    config, problems = validate_data(data)
    assert not problems, problems
    return config


def run(detector, config, index):
    """(decisions, the last state, WAITING or None)."""
    decisions, waiting = decide_all(detector, config, index)
    return decisions, decisions[-1].state if decisions else PolicyState(), waiting


def modyn_amount_windows(values, interval, amount_ref, amount_cur, threshold):
    """Modyn's AmountDetectionWindows (non-overlapping) step by step, deciding by the distance of the windows'
    means: the points that fire and the windows each detection compares."""
    current, reservoir = deque(maxlen=amount_cur), deque(maxlen=max(0, amount_ref - amount_cur))
    reference, compared, fired = deque(maxlen=amount_ref), [], []
    keys = [f"k{i:03d}" for i in range(1, len(values) + 1)]
    for start in range(0, len(keys) - interval + 1, interval):
        batch = keys[start : start + interval]
        pushes = len(current) + len(batch) - amount_cur
        for old in list(current)[: max(pushes, 0)]:
            reservoir.append(old)
        current.extend(batch)
        fires = not fired  # the first always
        if reference:
            compared.append((list(reference), list(current)))
            mean = lambda window: np.mean([values[int(k[1:]) - 1] for k in window])  # noqa: E731
            fires = abs(mean(reference) - mean(current)) >= threshold
        if fires:  # the trigger's model arrives: the windows move on
            fired.append(start + interval)
            reference.extend(reservoir)
            reservoir.clear()
            reference.extend(current)
            current.clear()
    return fired, compared


SHIFT = {"id": "EvidentlySimpleDistanceDriftMetric", "distance_metric": "euclidean",
         "decision_criterion": {"id": "ThresholdDecisionCriterion", "threshold": 6.0}}  # fmt: skip
DRIFT = {"id": "DataDriftTrigger", "evaluation_interval_data_points": 2, "features": "raw",
         "windowing_strategy": {"id": "AmountWindowingStrategy", "amount_ref": 4, "amount_cur": 3},
         "metrics": {"shift": SHIFT}}  # fmt: skip


def test_windows_are_modyn_s_and_the_distance_decides(monkeypatch):
    values = [0.0] * 6 + [10.0] * 8 + [30.0] * 6  # shifts at samples 7 and 15
    vectors, compared = Vectors(values, tagged=True), []
    monkeypatch.setattr(trigger, "measure", vectors.measured(compared))
    decisions, state, _ = run(DriftDetector(vectors), config_with(DRIFT), Index(20))
    fired = [d.point.event_time for d in decisions if d.fired]
    expected, windows = modyn_amount_windows(values, 2, 4, 3, threshold=6.0)
    assert [d.point.event_time for d in decisions] == list(range(2, 21, 2))
    assert fired == expected == [2, 8, 16, 18]
    assert decisions[0].phase == "first" and all(d.phase == "detection" for d in decisions[1:])
    assert compared == [tuple(pair) for pair in windows]
    references = [keys for keys in vectors.made if keys in [ref for ref, _ in compared]]
    assert len(references) == len(fired), "each reference read and embedded once"
    current = [key for keys in vectors.made if keys not in references for key in keys]
    assert sorted(current) == sorted(set(current)), "each current sample read once: the next window reuses it"
    assert "shift 6.66667 vs 6 fired" in decisions[3].reason
    assert state.reset == Boundary(18, "k018") and state.evaluations == 10


def test_the_vote_needs_a_majority_or_at_least_n():
    metrics = {name: {"id": "EvidentlySimpleDistanceDriftMetric",
                      "decision_criterion": {"id": "ThresholdDecisionCriterion", "threshold": threshold}}
               for name, threshold in (("low", 1.0), ("mid", 5.0), ("high", 50.0))}  # fmt: skip
    values = [0.0] * 4 + [10.0] * 4
    majority = run(DriftDetector(Vectors(values)), config_with({**DRIFT, "metrics": metrics}), Index(8))[0]
    assert [d.fired for d in majority] == [True, False, True, True]  # low and mid (>= 5): 2 of 3
    all_three = {**DRIFT, "metrics": metrics, "aggregation_strategy": {"id": "AtLeastN", "n": 3}}
    assert [d.fired for d in run(DriftDetector(Vectors(values)), config_with(all_three), Index(8))[0]] == [
        True,
        False,
        False,
        False,
    ]


def test_the_warmup_policy_decides_first_and_dynamic_criteria_calibrate_on_its_intervals(monkeypatch):
    policy = {**DRIFT, "warmup_intervals": 3, "warmup_policy": {"id": "DataAmountTrigger", "num_samples": 3},
              "metrics": {"shift": {"id": "EvidentlySimpleDistanceDriftMetric",
                                    "decision_criterion": {"id": "DynamicQuantileThresholdCriterion",
                                                           "window_size": 5, "quantile": 0.1}}}}  # fmt: skip
    values = [0.0, 1.0, 0.0, 2.0, 2.0, 2.0, 0.0, 1.0, 0.0, 1.0, 20.0, 20.0]
    vectors, compared = Vectors(values, tagged=True), []
    monkeypatch.setattr(trigger, "measure", vectors.measured(compared))
    decisions = run(DriftDetector(vectors), config_with(policy), Index(12))[0]
    # At the third warmup point (sample 6) each warmup reference (ending at 2, 2, 4: the first interval's own
    # samples, then the references before each reset) meets the one current window of that interval, (4, 6].
    assert compared[:3] == [(["k001", "k002"], ["k005", "k006"]), (["k001", "k002"], ["k005", "k006"]),
                            (["k001", "k002", "k003", "k004"], ["k005", "k006"])]  # fmt: skip
    assert [d.phase for d in decisions] == ["first", "warmup", "warmup", "detection", "detection", "detection"]
    # DataAmount(3) fires at samples 3, 6: within (0, 2]? no -> but the first fires anyway; (2, 4]: yes; (4, 6]: yes
    assert [d.fired for d in decisions[:3]] == [True, True, True]
    assert decisions[2].state.seen["shift"] == [1.5, 1.5, 1.25], "calibrated on the three warmup references"
    assert decisions[-1].fired, "the jump to 20 is beyond the calibrated quantile"
    assert not decisions[3].fired


def test_a_decision_on_embeddings_waits_for_the_model_of_the_last_trigger():
    trigger = {**DRIFT, "features": "embeddings"}
    values = [0.0] * 6 + [10.0] * 6 + [30.0] * 6
    vectors = Vectors(values, models=())
    detector, config, index = DriftDetector(vectors), config_with(trigger), Index(18)
    decisions, _, waiting = run(detector, config, index)
    assert [d.fired for d in decisions] == [True] and waiting is WAITING, "after the first trigger: its model"
    vectors.models = {0, 1}
    again, _, waiting = run(DriftDetector(vectors), config, index)
    fired = [d.fired for d in again]
    assert fired.count(True) == 3 and waiting is WAITING, "two models: decisions up to the third trigger"
    assert [d.model_index for d in again] == [None] + [sum(fired[:i]) - 1 for i in range(1, len(again))]
    vectors.models = {0, 1, 2, 3, 4, 5, 6, 7, 8}
    assert [d.point for d in run(DriftDetector(vectors), config, index)[0][: len(again)]] == [d.point for d in again]


def test_the_state_survives_its_json_record():
    state = run(DriftDetector(Vectors([0.0] * 6 + [10.0] * 6)), config_with(DRIFT), Index(12))[1]
    assert PolicyState.from_json(state.to_json()) == state
