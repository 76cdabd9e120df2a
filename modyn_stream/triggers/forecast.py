"""One-dimensional forecasts for triggers: the next value of a series, a cost at a size (Modyn's ridge models).

Ridge regression as scikit-learn fits it (features centred, intercept not penalised), in closed form for one
feature, so no estimator library is needed for a line.
"""

from __future__ import annotations

import numpy as np

SERIES_ALPHA, SERIES_MIN_OBSERVATIONS = 0.5, 5  # Modyn's forecast of a series
COST_ALPHA = 1.0  # Modyn's cost model: scikit-learn's default Ridge


def ridge_line(x, y, alpha: float) -> tuple[float, float]:
    """(intercept, slope) minimising sum((y - a - b x)²) + alpha b²."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    centred = x - x.mean()
    slope = float((centred * (y - y.mean())).sum() / ((centred**2).sum() + alpha))
    return float(y.mean() - slope * x.mean()), slope


def forecast(observations: list[float], method: str) -> float | None:
    """The next value of a series: its mean, or (ridge_regression, from 5 observations on) the ridge line over
    the observation index extended by one step. None for no observations."""
    if not observations:
        return None
    if method == "rolling_average" or len(observations) < SERIES_MIN_OBSERVATIONS:
        return float(np.mean(observations))
    intercept, slope = ridge_line(np.arange(len(observations)), observations, SERIES_ALPHA)
    return intercept + slope * len(observations)
