"""Streams with real concept drift, for the example pipelines, the tests and the benchmarks.

* `digits-drift`: scikit-learn's bundled 8x8 digits (1,797 real images, no download) resampled
  into a stream whose images rotate further in each of `phases` event-time phases, while the
  class mix shifts. A model trained on early data loses accuracy after each phase change.
* `tabular-drift`: a rotating-hyperplane stream: Gaussian features, label = side of a hyperplane
  that turns over event time (gradual drift), with label noise.
* `yearbook-drift`: a stand-in for Modyn's Yearbook benchmark in its format (float32 1x32x32
  pictures, binary labels, one day per year from 1970), whose classes drift over the years.
* `criteo-drift`: a stand-in for Modyn's Criteo benchmark in its record format (13 float32 + 26 int32 per
  sample, one event-time day per Criteo day), whose click model shifts from day to day.

>>> d = generate("tabular-drift", samples=1000, seed=1)
>>> d.x.shape, d.x.dtype.name, sorted(set(d.y.tolist())), bool((d.t[1:] >= d.t[:-1]).all())
((1000, 8), 'float32', [0, 1], True)
>>> bool((generate("tabular-drift", samples=50, seed=1).x == generate("tabular-drift", samples=50, seed=1).x).all())
True
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DAY_MS = 86_400_000
DEFAULT_START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class GeneratedDataset:
    name: str
    x: np.ndarray
    y: np.ndarray  # int64 labels
    t: np.ndarray  # int64 event times, ms since the epoch, non-decreasing

    def save(self, path: Path) -> Path:
        """Write an .npz with arrays x, y, t: replay it with `--format npz --timestamps field --t-key t`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            np.savez(handle, x=self.x, y=self.y, t=self.t)
        return path


def _event_times(rng: np.random.Generator, samples: int, days: float, start_ms: int) -> np.ndarray:
    return np.sort(start_ms + rng.integers(0, int(days * DAY_MS), size=samples, dtype=np.int64))


def bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (values 0-16) and their labels.

    Read from the file scikit-learn ships rather than through `sklearn.datasets`, whose import
    alone takes over a second: every run of a digits pipeline would wait for it.
    """
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():  # a scikit-learn that keeps its data elsewhere
        from sklearn.datasets import load_digits

        digits = load_digits()
        return digits.images, digits.target.astype(np.int64)
    data = np.loadtxt(path, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)


def digits_drift(
    samples: int = 20_000,
    seed: int = 0,
    days: float = 60,
    phases: int = 4,
    max_rotation: float = 90.0,
    start_ms: int = DEFAULT_START_MS,
) -> GeneratedDataset:
    from scipy.ndimage import rotate

    images, targets = bundled_digits()
    images = (images * (255.0 / 16.0)).astype(np.float32)
    rng = np.random.default_rng(seed)
    t = _event_times(rng, samples, days, start_ms)
    phase = np.minimum((t - start_ms) * phases // int(days * DAY_MS), phases - 1)
    x = np.empty((samples, 8, 8), dtype=np.uint8)
    y = np.empty(samples, dtype=np.int64)
    by_class = [np.flatnonzero(targets == c) for c in range(10)]
    for k in range(phases):
        members = np.flatnonzero(phase == k)
        # Class mix: a smooth bump that travels through the classes as phases go by.
        weights = 1.0 + 0.8 * np.cos(2 * np.pi * (np.arange(10) / 10 - k / phases))
        classes = rng.choice(10, size=len(members), p=weights / weights.sum())
        picks = np.array([rng.choice(by_class[c]) for c in classes], dtype=np.int64)
        angle = max_rotation * k / max(phases - 1, 1)
        rotated = rotate(images[picks], angle, axes=(1, 2), reshape=False, order=1, mode="constant")
        x[members] = np.clip(rotated, 0, 255).round().astype(np.uint8)
        y[members] = classes
    return GeneratedDataset("digits-drift", x, y, t)


def tabular_drift(
    samples: int = 20_000,
    seed: int = 0,
    days: float = 60,
    features: int = 8,
    turns: float = 0.5,
    noise: float = 0.05,
    start_ms: int = DEFAULT_START_MS,
) -> GeneratedDataset:
    rng = np.random.default_rng(seed)
    t = _event_times(rng, samples, days, start_ms)
    x = rng.standard_normal((samples, features)).astype(np.float32)
    angle = 2 * np.pi * turns * (t - start_ms) / (days * DAY_MS)
    normal = np.zeros((samples, features), dtype=np.float32)
    normal[:, 0], normal[:, 1] = np.cos(angle), np.sin(angle)
    y = (np.einsum("ij,ij->i", x, normal) > 0).astype(np.int64)
    flip = rng.random(samples) < noise
    y[flip] = 1 - y[flip]
    return GeneratedDataset("tabular-drift", x, y, t)


def yearbook_drift(samples: int = 4_000, seed: int = 0, years: int = 84, noise: float = 0.3) -> GeneratedDataset:
    """A stand-in for Modyn's Yearbook benchmark, in its format: 1x32x32 float32 pictures, a binary label, and one
    event-time day per year from 1970-01-01 (Modyn's fake timestamps: 1930 is day 0). Each class is a stripe
    pattern whose angle turns with the years, so by the last year class 0 looks as class 1 did in the first."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, years * DAY_MS, size=samples, dtype=np.int64))
    year = t // DAY_MS
    y = rng.integers(0, 2, size=samples).astype(np.int64)
    angle = (np.pi / 2) * (year / max(years - 1, 1) + y)
    rows, cols = np.mgrid[0:32, 0:32].astype(np.float32) / 32
    phase = np.cos(angle)[:, None, None] * cols + np.sin(angle)[:, None, None] * rows
    pictures = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * phase) + noise * rng.standard_normal((samples, 32, 32))
    x = np.clip(pictures, 0, 1).astype(np.float32)[:, None]
    return GeneratedDataset("yearbook-drift", x, y, t)


def criteo_drift(samples: int = 20_000, seed: int = 0, days: int = 24, cardinality: int = 100) -> GeneratedDataset:
    """A stand-in for Modyn's Criteo benchmark, in its record format: 156 payload bytes, 13 float32 numerical
    features (log(1 + count), as the preprocessing leaves them) then 26 int32 categorical ids (1..cardinality),
    a click label, and day d's samples at d days + 1 s (Modyn's `criteo_timestamps.py`). Clicks follow a
    logistic model whose preferred ids of the first three features shift from day to day."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, days, size=samples) * DAY_MS + 1000 + rng.integers(0, DAY_MS - 1000, size=samples))
    day = t // DAY_MS
    numerical = np.log1p(rng.poisson(3.0, (samples, 13))).astype(np.float32)
    ids = rng.zipf(1.3, (samples, 26)) % cardinality + 1
    preferred = (ids[:, :3] + (day[:, None] * cardinality // max(days, 1))) % cardinality < cardinality // 4
    logit = 1.5 * preferred.sum(1) - 2.0 + 0.3 * (numerical[:, 0] - numerical[:, 1])
    y = (rng.random(samples) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    records = np.concatenate([numerical.view(np.uint8), ids.astype("<i4").view(np.uint8)], axis=1)
    return GeneratedDataset("criteo-drift", records, y, t)


GENERATORS: dict[str, Callable[..., GeneratedDataset]] = {
    "digits-drift": digits_drift,
    "tabular-drift": tabular_drift,
    "yearbook-drift": yearbook_drift,
    "criteo-drift": criteo_drift,
}


def generate(name: str, **options) -> GeneratedDataset:
    try:
        generator = GENERATORS[name]
    except KeyError:
        raise ValueError(f"unknown built-in dataset {name!r}; known: {', '.join(GENERATORS)}") from None
    return generator(**options)
