"""PerformanceTrigger's schema: Modyn's fields validate, and what cannot be honoured is one line."""

import pytest

from modyn_stream.pipeline.notes import pipeline_notes
from modyn_stream.pipeline.schema.performance import PerformanceTrigger
from tests.pipeline.schema.test_drift import with_trigger

EVALUATION = {"device": "cpu", "dataset": {"dataset_id": "digits", "metrics": [{"name": "Accuracy"},
                                                                              {"name": "F1Score"}]}}  # fmt: skip
STATIC = {"id": "StaticPerformanceThresholdCriterion", "metric": "Accuracy", "metric_threshold": 0.8}


def performance(**fields):
    return with_trigger({"id": "PerformanceTrigger", "evaluation": EVALUATION, **fields})


def test_modyn_s_performance_trigger_validates_with_its_defaults():
    config, problems = performance(decision_criteria={"static": STATIC})
    assert not problems, problems
    trigger = config.trigger
    assert isinstance(trigger, PerformanceTrigger)
    assert (trigger.mode, trigger.forecasting_method, trigger.performance_triggers_window_size) == (
        "hindsight", "ridge_regression", 10
    )  # fmt: skip
    config, problems = performance(
        decision_criteria={"f1": {"id": "DynamicRollingAveragePerformanceThresholdCriterion", "metric": "F1Score"},
                           "miss": {"id": "StaticNumberMisclassificationCriterion",
                                    "avoidable_misclassification_threshold": 100}},
        warmup_intervals=2, warmup_policy={"id": "TimeTrigger", "every": "1d"},
    )  # fmt: skip
    assert not problems, problems


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"decision_criteria": {"s": STATIC}, "mode": "lookahead"}, "only hindsight mode is supported"),
        ({"decision_criteria": {"s": {**STATIC, "metric": "RocAuc"}}},
         "decision_criteria.s: metric 'RocAuc' is not one of evaluation.dataset's metrics (Accuracy, F1Score)"),
        ({"decision_criteria": {"s": STATIC},
          "evaluation": {"device": "cpu", "dataset": {"dataset_id": "digits", "metrics": [{"name": "F1Score"}]}}},
         "the performance trigger needs the Accuracy metric"),
        ({"decision_criteria": {"s": STATIC},
          "evaluation": {**EVALUATION, "dataset": {**EVALUATION["dataset"], "dataset_id": "other"}}},
         "'other' is not the pipeline's dataset 'digits'"),
        ({"decision_criteria": {"q": {"id": "DynamicQuantilePerformanceThresholdCriterion", "metric": "Accuracy"}}},
         "a warmup_policy is required"),
        ({"decision_criteria": {}}, "decision_criteria: Dictionary should have at least 1 item"),
    ],
)  # fmt: skip
def test_what_cannot_be_honoured_is_one_line(fields, problem):
    problems = performance(**fields)[1]
    assert len(problems) == 1 and problem in problems[0], problems


def test_lookahead_only_fields_are_noted():
    config, problems = performance(decision_criteria={"s": STATIC}, data_density_window_size=5)
    assert not problems
    assert any("data_density_window_size: only lookahead mode reads it" in n for n in pipeline_notes(config))
