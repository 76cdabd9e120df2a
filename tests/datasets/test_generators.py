"""The built-in streams are deterministic and really drift: a model of early data degrades later."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modyn_stream.datasets import generate
from modyn_stream.datasets.generators import DAY_MS, bundled_digits


@pytest.mark.parametrize("name", ["digits-drift", "tabular-drift"])
def test_same_seed_same_stream_other_seed_other_stream(name):
    a, b, c = (generate(name, samples=600, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) and np.array_equal(a.t, b.t)
    assert not np.array_equal(a.x, c.x)
    assert (np.diff(a.t) >= 0).all() and a.t[-1] - a.t[0] < 60 * DAY_MS


def _early_model_accuracy(dataset, early_fraction=0.25):
    x = dataset.x.reshape(len(dataset.x), -1).astype(np.float32)
    n = len(x)
    cut = int(n * early_fraction)
    train, holdout, late = slice(0, cut * 4 // 5), slice(cut * 4 // 5, cut), slice(n - cut, n)
    model = LogisticRegression(max_iter=2000).fit(x[train], dataset.y[train])
    return model.score(x[holdout], dataset.y[holdout]), model.score(x[late], dataset.y[late])


def test_digits_rotate_away_from_what_an_early_model_learned():
    early, late = _early_model_accuracy(generate("digits-drift", samples=6000, seed=0))
    assert early > 0.9 and late < early - 0.4, (early, late)


def test_tabular_hyperplane_turns_against_an_early_model():
    early, late = _early_model_accuracy(generate("tabular-drift", samples=6000, seed=0))
    assert early > 0.85 and late < 0.5, (early, late)


def test_unknown_dataset_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown built-in dataset 'mnist'; known: digits-drift, tabular-drift"):
        generate("mnist")
    saved = np.load(generate("tabular-drift", samples=10).save(tmp_path / "d.npz"))
    assert set(saved.files) == {"x", "y", "t"}


def test_bundled_digits_are_scikit_learns():
    from sklearn.datasets import load_digits

    images, labels = bundled_digits()
    digits = load_digits()
    assert images.shape == (1797, 8, 8) and np.array_equal(images, digits.images)
    assert labels.dtype == np.int64 and np.array_equal(labels, digits.target)
