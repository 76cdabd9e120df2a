"""Each drift metric against an independent computation of its definition on fixed data."""

import itertools

import numpy as np
import pytest
import torch

from modyn_stream.pipeline.schema.drift import (
    AlibiDetectCVMDriftMetric,
    AlibiDetectKSDriftMetric,
    AlibiDetectMmdDriftMetric,
    EvidentlyHellingerDistanceDriftMetric,
    EvidentlyModelDriftMetric,
    EvidentlyRatioDriftMetric,
    EvidentlySimpleDistanceDriftMetric,
)
from modyn_stream.triggers.drift import metrics
from modyn_stream.triggers.drift.metrics import measure

THRESHOLD = {"id": "ThresholdDecisionCriterion", "threshold": 0.5}
RNG = np.random.default_rng(7)
SAME_A, SAME_B = RNG.normal(size=(120, 3)), RNG.normal(size=(100, 3))
SHIFTED = RNG.normal(loc=1.5, size=(100, 3))


def metric(cls, **fields):
    return cls(decision_criterion=THRESHOLD, **fields)


def direct_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² by its sums, with sigma² = half the lower median of the squared reference distances."""
    dx = ((x[:, None] - x[None]) ** 2).sum(-1)
    sigma2 = 0.5 * np.sort(dx.ravel())[dx.size // 2 - 1]
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * sigma2))  # noqa: E731
    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * k(x, y).mean())  # fmt: skip


def test_mmd_is_the_unbiased_estimate_with_the_reference_bandwidth(monkeypatch):
    monkeypatch.setattr(metrics, "BLOCK_ROWS", 7)  # several row blocks, one crossing the reference/current edge
    for cur in (SAME_B, SHIFTED):
        result = measure(metric(AlibiDetectMmdDriftMetric), SAME_A, cur, seed=0)
        assert result.distance == pytest.approx(direct_mmd2(SAME_A, cur), abs=1e-7)  # kernels in float32
        assert result.test_drift is None and result.p_val is None  # no permutations, no threshold: no test
    far = SAME_B + 40.0  # kernel values across the windows below float32's smallest normal number
    assert measure(metric(AlibiDetectMmdDriftMetric), SAME_A, far, 0).distance == pytest.approx(
        direct_mmd2(SAME_A, far), abs=1e-7
    )
    assert measure(metric(AlibiDetectMmdDriftMetric), SAME_A, SHIFTED, 0).distance > 0.3
    assert abs(measure(metric(AlibiDetectMmdDriftMetric), SAME_A, SAME_B, 0).distance) < 0.05


def chunks_of(stream: np.ndarray, end: int, size: int, chunks: int, first_rows: int):
    """The window of `stream` ending at row `end` as `chunks` chunks of `size` rows counted back from its end, the
    first one whole but only its last `first_rows` rows in the window (as `CurrentWindows` gives them), each
    named by its end: (chunks, the window's rows)."""
    ends = range(end - (chunks - 1) * size, end + 1, size)
    chunks = [((e,), stream[e - size : e], None) for e in ends]
    first = chunks[0][1]
    chunks[0] = (chunks[0][0], first, np.arange(len(first)) >= len(first) - first_rows)
    return chunks, np.concatenate([first[-first_rows:], *(v for _, v, _ in chunks[1:])])


def test_mmd_over_chunks_is_the_same_estimate_and_reuses_what_each_chunk_contributes(monkeypatch):
    config = metric(AlibiDetectMmdDriftMetric)
    stream = np.concatenate([SAME_B, SHIFTED])  # a current window sliding over it
    calls = []
    blocks = metrics._kernel_blocks
    monkeypatch.setattr(metrics, "_kernel_blocks", lambda a, b, gamma: calls.append(len(a)) or blocks(a, b, gamma))
    warm, distances = {}, []
    for end in range(60, 201, 20):  # windows of 50 rows, chunks of 20: the oldest one 10 rows in the window
        chunks, window = chunks_of(stream, end, 20, 3, 10)
        calls.clear()
        result = measure(config, SAME_A, window, seed=0, cache=warm, chunks=chunks)
        assert result.distance == pytest.approx(direct_mmd2(SAME_A, window), abs=1e-7)
        if end > 60:  # only the new chunk's row sums: against the reference, and the two chunks' before it
            assert calls == [20, 20, 20], calls
        cold = measure(config, SAME_A, window, seed=0, cache={}, chunks=chunks)
        assert cold.distance == result.distance, "what was kept changes nothing: a restart decides the same"
        distances.append(result.distance)
    assert distances[0] < 0.05 < 0.3 < distances[-1], "the window slides from the reference's kind to the shift"
    assert len(warm["chunks"]) == 3, "chunks that left the window are forgotten"


def test_mmd_permutation_test_counts_the_splits_at_least_as_extreme():
    config = metric(AlibiDetectMmdDriftMetric, num_permutations=30, p_val=0.05)
    pooled_same, pooled_shift = np.concatenate([SAME_A, SAME_B]), np.concatenate([SAME_A, SHIFTED])
    for pooled, cur in ((pooled_same, SAME_B), (pooled_shift, SHIFTED)):
        result = measure(config, SAME_A, cur, seed=11)
        generator = torch.Generator().manual_seed(11)
        marks = np.concatenate([np.ones(len(SAME_A)), np.zeros(len(cur))])
        permuted = []
        for _ in range(30):  # the same permutations, each scored directly (with the observed bandwidth)
            split = marks[torch.randperm(len(marks), generator=generator).numpy()].astype(bool)
            permuted.append(_mmd2_fixed_sigma(pooled[split], pooled[~split], SAME_A))
        assert result.p_val == pytest.approx(np.mean(np.array(permuted) >= result.distance - 1e-12))
        assert result.test_drift == (result.p_val < 0.05)
    assert measure(config, SAME_A, SHIFTED, 11).test_drift is True
    assert measure(config, SAME_A, SAME_B, 11).test_drift is False
    assert measure(config, SAME_A, SHIFTED, 11) == measure(config, SAME_A, SHIFTED, 11), "seeded"


def _mmd2_fixed_sigma(x, y, reference):
    dr = ((reference[:, None] - reference[None]) ** 2).sum(-1)
    sigma2 = 0.5 * np.sort(dr.ravel())[dr.size // 2 - 1]
    k = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * sigma2))  # noqa: E731
    n, m = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * k(x, y).mean())  # fmt: skip


def test_mmd_with_a_threshold_tests_the_distance():
    result = measure(metric(AlibiDetectMmdDriftMetric, threshold=0.1), SAME_A, SHIFTED, 0)
    assert result.test_drift is True and result.threshold == 0.1


def ecdf_gap(a, b):
    grid = np.concatenate([a, b])
    return np.abs((a[:, None] <= grid).mean(0) - (b[:, None] <= grid).mean(0)).max()


def test_ks_distance_is_the_mean_statistic_over_features():
    result = measure(metric(AlibiDetectKSDriftMetric), SAME_A, SHIFTED, 0)
    assert result.distance == pytest.approx(np.mean([ecdf_gap(SAME_A[:, f], SHIFTED[:, f]) for f in range(3)]))
    assert result.test_drift is True and result.threshold == pytest.approx(0.05 / 3)  # Bonferroni
    assert measure(metric(AlibiDetectKSDriftMetric), SAME_A, SAME_B, 0).test_drift is False


def test_cvm_distance_is_the_two_sample_criterion():
    def criterion(a, b):  # Anderson (1962): T from the ranks of each sample in the pooled one
        n, m = len(a), len(b)
        ranks = np.argsort(np.argsort(np.concatenate([a, b]))) + 1
        u = n * ((ranks[:n][np.argsort(a)] - np.arange(1, n + 1)) ** 2).sum()
        u += m * ((ranks[n:][np.argsort(b)] - np.arange(1, m + 1)) ** 2).sum()
        return u / (n * m * (n + m)) - (4 * m * n - 1) / (6 * (m + n))

    result = measure(metric(AlibiDetectCVMDriftMetric), SAME_A, SHIFTED, 0)
    assert result.distance == pytest.approx(np.mean([criterion(SAME_A[:, f], SHIFTED[:, f]) for f in range(3)]))
    assert result.test_drift is True


def test_corrections_bonferroni_and_benjamini_hochberg():
    class Fixed:
        def __init__(self, p):
            self.statistic, self.pvalue = 0.0, p

    p_values = iter([0.012, 0.02, 0.03, 0.5])
    features = np.zeros((5, 4))
    test = lambda a, b: Fixed(next(p_values))  # noqa: E731
    bonferroni = metrics.per_feature_test(features, features, test, 0.05, "bonferroni")
    assert bonferroni.test_drift is True and bonferroni.p_val == 0.012  # 0.012 < 0.05 / 4
    p_values = iter([0.02, 0.03, 0.035, 0.5])
    assert metrics.per_feature_test(features, features, test, 0.05, "bonferroni").test_drift is False
    p_values = iter([0.02, 0.03, 0.035, 0.5])  # BH: 0.035 < 0.05 * 3 / 4 -> drift, threshold 0.0375
    fdr = metrics.per_feature_test(features, features, test, 0.05, "fdr")
    assert fdr.test_drift is True and fdr.threshold == pytest.approx(0.0375)


def test_hellinger_is_zero_for_equal_samples_and_one_for_disjoint_ones():
    same = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert measure(metric(EvidentlyHellingerDistanceDriftMetric), same, same, 0).distance == pytest.approx(0.0)
    far = same + 100.0
    assert measure(metric(EvidentlyHellingerDistanceDriftMetric), same, far, 0).distance == pytest.approx(1.0)
    # two bins by hand: values {0, 1} -> Sturges gives 2 bins on [0, 1]; p = (3/4, 1/4), q = (1/4, 3/4)
    a, b = np.array([0, 0, 0, 1.0]), np.array([0, 1, 1, 1.0])
    expected = np.sqrt(1 - (np.sqrt(0.75 * 0.25) * 2))
    assert metrics.hellinger(a, b) == pytest.approx(expected)


def test_simple_distance_compares_the_means():
    for name, fn in [("euclidean", lambda u, v: np.linalg.norm(u - v)), ("cityblock", lambda u, v: np.abs(u - v).sum()),
                     ("chebyshev", lambda u, v: np.abs(u - v).max()),
                     ("cosine", lambda u, v: 1 - u @ v / np.linalg.norm(u) / np.linalg.norm(v))]:  # fmt: skip
        result = measure(metric(EvidentlySimpleDistanceDriftMetric, distance_metric=name), SAME_A, SHIFTED, 0)
        assert result.distance == pytest.approx(fn(SAME_A.mean(0), SHIFTED.mean(0))), name
    boot = metric(EvidentlySimpleDistanceDriftMetric, bootstrap=True)
    assert measure(boot, SAME_A, SHIFTED, 3).test_drift is True
    assert measure(boot, SAME_A, SHIFTED, 3) == measure(boot, SAME_A, SHIFTED, 3)


def test_ratio_counts_features_whose_normed_wasserstein_distance_passes():
    ref = np.column_stack([np.arange(100.0), np.arange(100.0), np.arange(100.0)])
    cur = np.column_stack([np.arange(100.0), np.arange(100.0) + 3.0, np.arange(100.0) + 30.0])
    # equal sizes: W1 = mean |sorted a - sorted b| = 0, 3, 30; normed by std(ref) = 28.87 -> 0, 0.10, 1.04
    result = measure(metric(EvidentlyRatioDriftMetric), ref, cur, 0)
    assert result.distance == pytest.approx(2 / 3)  # 0.104 and 1.04 are >= 0.1
    assert measure(metric(EvidentlyRatioDriftMetric, component_stattest_threshold=0.2), ref, cur, 0).distance == (
        pytest.approx(1 / 3)
    )


def test_model_drift_is_the_held_out_auc_of_a_classifier():
    labels, scores = np.array([1, 1, 0, 0, 1]), np.array([0.9, 0.4, 0.5, 0.1, 0.5])
    scored = list(zip(scores, labels, strict=True))
    pairs = [(s1 > s0) + 0.5 * (s1 == s0) for (s1, l1), (s0, l0) in itertools.product(scored, repeat=2)
             if l1 == 1 and l0 == 0]  # fmt: skip
    assert metrics.roc_auc(labels, scores) == pytest.approx(np.mean(pairs))
    shifted = measure(metric(EvidentlyModelDriftMetric), SAME_A, SHIFTED + 2.0, 0)
    assert shifted.distance > 0.95 and shifted.test_drift is True
    same = measure(metric(EvidentlyModelDriftMetric), SAME_A, SAME_B, 0)
    assert 0.3 < same.distance < 0.7


def test_pca_projects_both_windows_on_the_reference_axes():
    ref = np.column_stack([np.linspace(-1, 1, 50) * 10, np.linspace(-1, 1, 50) * 0.1])
    a, b = metrics.principal_components(ref, ref + np.array([5.0, 0.0]), 1)
    axis = np.array([10.0, 0.1]) / np.hypot(10.0, 0.1)  # the data lie on this line
    assert a.shape == (50, 1) and np.allclose(np.abs(b - a), 5.0 * axis[0])
