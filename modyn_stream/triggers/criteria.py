"""Decision criteria: one metric's series of values -> trigger or not, as Modyn's decision policies decide.

A criterion's state is the list of values it has seen (the last `window_size`), kept by the caller so it can be
recorded with each evaluation and restored after a restart. `higher`: a larger value is worse (drift
distances); performance triggers use `lower` (accuracy).
"""

from __future__ import annotations

import numpy as np

from modyn_stream.pipeline.schema.drift import HypothesisTestDecisionCriterion, ThresholdDecisionCriterion
from modyn_stream.pipeline.schema.performance import StaticPerformanceThresholdCriterion


def decide(criterion, value: float, seen: list[float], test_drift: bool | None = None, higher: bool = True):
    """(decision, threshold it was compared with, the values seen after this one).

    Dynamic criteria (drift's and performance's: a `quantile` or a `deviation`) always fire on their first
    value (nothing to compare it with), as Modyn's do, and keep at most `window_size` values."""
    if isinstance(criterion, ThresholdDecisionCriterion | StaticPerformanceThresholdCriterion):
        threshold = (
            criterion.threshold if isinstance(criterion, ThresholdDecisionCriterion) else criterion.metric_threshold
        )
        fired = value >= threshold if higher else value <= threshold
        return fired, threshold, seen
    if isinstance(criterion, HypothesisTestDecisionCriterion):
        return bool(test_drift), None, seen
    after = [*seen, value][-criterion.window_size :]
    if not seen:
        return True, None, after
    if hasattr(criterion, "quantile"):
        quantile = 1 - criterion.quantile if higher else criterion.quantile
        threshold = float(np.quantile(seen, quantile, method="linear"))
        return (value > threshold if higher else value < threshold), threshold, after
    if hasattr(criterion, "deviation"):
        average = sum(seen) / len(seen)
        margin = criterion.deviation if criterion.absolute else criterion.deviation * average
        threshold = average + margin if higher else average - margin
        return (value >= threshold if higher else value <= threshold), threshold, after
    raise TypeError(f"no decision criterion {type(criterion).__name__}")
