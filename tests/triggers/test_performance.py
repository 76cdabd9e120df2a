"""PerformanceTrigger's decisions over an in-memory stream whose second half a model only knows once it was
trained on some of it: each criterion as Modyn defines it, the warmup, waiting for models, the forecast."""

import numpy as np
import pytest
import torch

from modyn_stream.triggers.batched import WAITING
from modyn_stream.triggers.forecast import forecast
from modyn_stream.triggers.performance import PerformanceJudge
from tests.triggers.decisions import decide_all
from tests.triggers.drift.test_trigger import Index, config_with

SHIFT = 600  # samples 1..600 are of the old kind, the others of a new one


class Models:
    """Model k knows the kind of the samples up to its trigger's point; it predicts a sample's label (its time
    modulo 2) right for a known kind, `wrong_share` of them wrong otherwise."""

    def __init__(self, wrong_share: float = 1.0) -> None:
        self.points, self.available, self.wrong_share = [], None, wrong_share

    def model(self, pid, config, index):
        return object() if self.available is None or index in self.available else None

    def outputs(self, pid, config, rows, model_index, data, device):
        knows_new = self.points[model_index] > SHIFT
        times = rows["t"].to_numpy()
        labels = times % 2
        wrong = (times > SHIFT) & ~knows_new & ((times % 100) < 100 * self.wrong_share)
        predicted = np.where(wrong, 1 - labels, labels)
        return torch.nn.functional.one_hot(torch.from_numpy(predicted), 2).double(), np.ones(len(times), bool)


NEVER = {"id": "DataAmountTrigger", "num_samples": 10_000}  # a warmup policy that does not fire here
EVALUATION = {"device": "cpu", "dataset": {"dataset_id": "digits", "metrics": [{"name": "Accuracy"}]}}


def performance(criteria: dict, **fields) -> dict:
    return {"id": "PerformanceTrigger", "evaluation_interval_data_points": 100, "evaluation": EVALUATION,
            "decision_criteria": criteria, **fields}  # fmt: skip


def run(config, models: Models, n: int = 1200):
    return decide_all(PerformanceJudge(models), config, Index(n), lambda d: models.points.append(d.point.event_time))


def fired_at(decisions):
    return [d.point.event_time for d in decisions if d.fired]


def test_a_static_threshold_fires_when_accuracy_falls_to_it():
    static = {"acc": {"id": "StaticPerformanceThresholdCriterion", "metric": "Accuracy", "metric_threshold": 0.9}}
    decisions, _ = run(config_with(performance(static)), Models())
    assert fired_at(decisions) == [100, 700], "the first always; then where the old model meets the new kind"
    assert decisions[6].results["acc"].value == 0.0 and decisions[6].results["acc"].threshold == 0.9
    assert [d.model_index for d in decisions[:8]] == [None, 0, 0, 0, 0, 0, 0, 1]
    assert "acc 0 vs 0.9 fired" in decisions[6].reason


def test_avoidable_misclassifications_accumulate_until_their_threshold_and_reset_at_a_trigger():
    criterion = {"miss": {"id": "StaticNumberMisclassificationCriterion", "expected_accuracy": 0.9,
                          "avoidable_misclassification_threshold": 150}}  # fmt: skip
    config = config_with(performance(criterion, warmup_intervals=1, warmup_policy=NEVER))
    decisions, _ = run(config, Models(wrong_share=0.5))
    # from sample 601 on, 50 of each 100 are wrong where 10 are expected: 40 avoidable per interval
    counts = [d.results["miss"].value for d in decisions if d.phase == "detection"]
    assert counts[:9] == [0, 0, 0, 0, 0, 40, 80, 120, 160]
    assert fired_at(decisions) == [100, 1000] and decisions[10].results["miss"].value == 0, "reset by the trigger"


def test_dynamic_criteria_calibrate_during_the_warmup_and_fire_on_a_drop():
    quantile = {"q": {"id": "DynamicQuantilePerformanceThresholdCriterion", "metric": "Accuracy", "window_size": 4,
                      "quantile": 0.1}}  # fmt: skip
    config = config_with(performance(quantile, warmup_intervals=3, warmup_policy=NEVER))
    decisions, _ = run(config, Models())
    assert [d.phase for d in decisions[:4]] == ["first", "warmup", "warmup", "detection"]
    assert decisions[2].state.seen["q"] == [1.0, 1.0], "the warmup's scores calibrate the criterion"
    assert fired_at(decisions) == [100, 700]


def test_each_decision_waits_for_the_model_of_the_last_trigger():
    static = {"acc": {"id": "StaticPerformanceThresholdCriterion", "metric": "Accuracy", "metric_threshold": 0.9}}
    models = Models()
    models.available = set()
    decisions, waiting = run(config_with(performance(static)), models)
    assert fired_at(decisions) == [100] and waiting is WAITING


def test_the_expected_accuracy_is_forecast_by_ridge_regression_or_the_mean():
    assert forecast([], "ridge_regression") is None
    assert forecast([0.8, 0.9], "ridge_regression") == pytest.approx(0.85), "fewer than 5: the mean"
    series = [0.9, 0.85, 0.86, 0.8, 0.78, 0.75]
    x = np.arange(len(series))
    design = np.vstack([np.column_stack([np.ones_like(x), x]), [0.0, np.sqrt(0.5)]])  # intercept not penalised
    intercept, slope = np.linalg.lstsq(design, np.append(series, 0.0), rcond=None)[0]
    assert forecast(series, "ridge_regression") == pytest.approx(intercept + slope * len(series))
    assert forecast(series, "rolling_average") == pytest.approx(np.mean(series))
