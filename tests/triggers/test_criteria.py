"""Decision criteria against Modyn's definitions of its decision policies."""

import numpy as np

from modyn_stream.pipeline.schema.drift import (
    DynamicQuantileThresholdCriterion,
    DynamicRollingAverageThresholdCriterion,
    HypothesisTestDecisionCriterion,
    ThresholdDecisionCriterion,
)
from modyn_stream.triggers.criteria import decide


def series(criterion, values, higher=True):
    seen, decisions = [], []
    for value in values:
        fired, _, seen = decide(criterion, value, seen, higher=higher)
        decisions.append(fired)
    return decisions, seen


def test_a_static_threshold_fires_at_or_beyond_it():
    criterion = ThresholdDecisionCriterion(threshold=0.5)
    assert series(criterion, [0.4, 0.5, 0.6])[0] == [False, True, True]
    assert series(criterion, [0.4, 0.5, 0.6], higher=False)[0] == [True, True, False]


def test_the_quantile_criterion_fires_beyond_the_extreme_quantile_of_the_last_values():
    criterion = DynamicQuantileThresholdCriterion(window_size=4, quantile=0.25)
    values = [1.0, 2.0, 3.0, 4.0, 3.5, 10.0, 1.0]
    decisions, seen = series(criterion, values)
    expected = [True]  # nothing to compare the first with
    for i in range(1, len(values)):
        window = values[max(0, i - 4) : i]
        expected.append(values[i] > np.quantile(window, 0.75))
    assert decisions == expected and seen == values[-4:]
    low = series(criterion, values, higher=False)[0]
    assert low[1:] == [values[i] < np.quantile(values[max(0, i - 4) : i], 0.25) for i in range(1, len(values))]


def test_the_rolling_average_criterion_fires_on_a_relative_or_absolute_deviation():
    relative = DynamicRollingAverageThresholdCriterion(window_size=3, deviation=0.5)
    assert series(relative, [2.0, 2.0, 2.9, 3.5])[0] == [True, False, False, True]  # 3.5 >= 1.5 * avg(2, 2, 2.9)
    absolute = DynamicRollingAverageThresholdCriterion(window_size=3, deviation=0.5, absolute=True)
    assert series(absolute, [2.0, 2.4, 2.8])[0] == [True, False, True]  # 2.8 >= avg(2, 2.4) + 0.5


def test_the_hypothesis_test_criterion_takes_the_metric_s_verdict():
    criterion = HypothesisTestDecisionCriterion()
    assert decide(criterion, 0.1, [], test_drift=True)[0] is True
    assert decide(criterion, 9.9, [], test_drift=False)[0] is False
