"""Cost-aware triggers over an in-memory stream: the incorporation latency as Modyn accumulates it, against a
linear cost model and a measured one, and avoidable misclassifications waiting."""

import numpy as np
import pytest

from modyn_stream.triggers.cost import CostJudge
from tests.triggers.decisions import decide_all
from tests.triggers.drift.test_trigger import Index, config_with
from tests.triggers.test_performance import EVALUATION, NEVER, Models


class Costs(Models):
    """Models as in the performance tests, plus the `models` rows a cost model reads."""

    def __init__(self, trained: list[tuple[int, float]] = (), **kwargs) -> None:
        super().__init__(**kwargs)
        self.store, self.trained = self, list(trained)

    def query(self, sql, params):
        return list(reversed(self.trained[: params["i"] + 1]))[: params["n"]]


def run(config, data, n: int = 1200):
    return decide_all(CostJudge(data), config, Index(n), lambda d: data.points.append(d.point.event_time))


def latency_reference(times_ms: list[int], every: int, factor: float, cost_of) -> list[int]:
    """Modyn's DataIncorporationLatencyCostTrigger step by step (seconds): where it fires."""
    fired, waiting, area, unincorporated, previous_end = [], 0, 0.0, 0, None
    for k in range(0, len(times_ms) - every + 1, every):
        batch = [t / 1000 for t in times_ms[k : k + every]]
        start = previous_end if previous_end is not None else batch[0]
        duration = batch[-1] - start
        previous_end = batch[-1]
        area += waiting * duration + sum(batch[-1] - t for t in batch)
        waiting += len(batch)
        unincorporated += len(batch)
        if not fired or area * factor >= cost_of(unincorporated):
            fired.append(k + every)
            waiting, area, unincorporated = 0, 0.0, 0
    return fired


def latency_trigger(**fields) -> dict:
    return {"id": "DataIncorporationLatencyCostTrigger", "evaluation_interval_data_points": 50,
            "incorporation_delay_per_training_second": 0.05, **fields}  # fmt: skip


def test_incorporation_latency_against_a_linear_cost_fires_where_modyn_s_would():
    config = config_with(latency_trigger(cost_model="linear", seconds_per_sample=0.002, seconds_per_trigger=1.0))
    decisions, _ = run(config, Costs())
    expected = latency_reference(list(range(1, 1201)), 50, 0.05, lambda samples: 1.0 + 0.002 * samples)
    assert [d.point.event_time for d in decisions if d.fired] == expected
    assert len(expected) > 3, "the trade-off fires more than once"
    assert "linear: 1 s + 0.002 s/sample" in next(d.reason for d in decisions if d.phase == "detection")


def test_the_measured_cost_is_a_ridge_line_over_past_training_times():
    trained = [(100, 2.0), (300, 4.0), (500, 6.5)]
    data = Costs(trained=trained)
    judge = CostJudge(data)
    config = config_with(latency_trigger())
    cost, model = judge._cost("p", config.trigger, 2, 400)
    x, y = np.array([500, 300, 100.0]), np.array([6.5, 4.0, 2.0])
    slope = ((x - x.mean()) * (y - y.mean())).sum() / (((x - x.mean()) ** 2).sum() + 1.0)
    assert cost == pytest.approx(y.mean() + slope * (400 - x.mean())) and "ridge over 3" in model


def test_avoidable_misclassifications_waiting_outweigh_the_training_cost():
    config = config_with({
        "id": "AvoidableMisclassificationCostTrigger", "evaluation_interval_data_points": 100,
        "evaluation": EVALUATION, "expected_accuracy": 0.9, "warmup_intervals": 1, "warmup_policy": NEVER,
        "avoidable_misclassification_latency_per_training_second": 1.0, "cost_model": "linear",
        "seconds_per_sample": 0.0, "seconds_per_trigger": 4.0,
    })  # fmt: skip
    decisions, _ = run(config, Costs(wrong_share=0.5))
    # from sample 601 on, 40 avoidable per interval of 0.1 s: the 40 waiting add 4 misclassification-seconds per
    # interval, the 40 new half an interval each, 2
    regrets = [d.results["regret"].value for d in decisions if d.phase == "detection"][:7]
    assert regrets == pytest.approx([0, 0, 0, 0, 0, 2.0, 2.0 + 4.0 + 2.0])
    assert [d.point.event_time for d in decisions if d.fired] == [100, 800]
