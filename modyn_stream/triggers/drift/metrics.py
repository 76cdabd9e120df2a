"""Drift metrics: how far the current window's vectors are from the reference window's.

Each metric takes two float arrays (samples x features) and returns a `MetricResult`: its distance (what
decision criteria compare, on Modyn's scale: MMD², mean KS/CVM statistic, ROC AUC, drifted share, distance
of means, mean Hellinger distance) and the verdict of its own test (`test_drift`, with its p-value and
threshold where it has them). Statistics come from SciPy; MMD runs on torch in row blocks, so 2 x 5,000
samples never hold a 10,000² kernel matrix; kernels are evaluated in float32 and summed in float64.
Randomness (permutations, resamples, the classifier's split) is seeded by the caller, so the same windows
always give the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import spatial, stats

from modyn_stream.pipeline.schema.drift import (
    AlibiDetectCVMDriftMetric,
    AlibiDetectKSDriftMetric,
    AlibiDetectMmdDriftMetric,
    EvidentlyHellingerDistanceDriftMetric,
    EvidentlyModelDriftMetric,
    EvidentlyRatioDriftMetric,
    EvidentlySimpleDistanceDriftMetric,
)

BLOCK_ROWS = 1024
BOOTSTRAPS = 100
SMALLEST_EXPONENT = -87.0  # e^-87: about float32's smallest normal number


@dataclass(frozen=True)
class MetricResult:
    distance: float
    test_drift: bool | None = None  # the metric's own test; None: it has none
    p_val: float | None = None
    threshold: float | None = None


def measure(config, ref: np.ndarray, cur: np.ndarray, seed: int, cache: dict | None = None, chunks=None):
    """The result of the metric `config` on windows `ref` and `cur` (2-d float arrays); `cache`: a dict the caller
    keeps for this metric while `ref` stays the same, so what depends on the reference alone is computed once;
    `chunks`: `cur` as a `ChunkedWindow`'s chunks, so what depends on one chunk is computed once too."""
    if isinstance(config, AlibiDetectMmdDriftMetric):
        return mmd(ref, cur, config, seed, cache, chunks)
    if isinstance(config, AlibiDetectKSDriftMetric):
        return per_feature_test(ref, cur, _ks(config.alternative_hypothesis), config.p_val, config.correction)
    if isinstance(config, AlibiDetectCVMDriftMetric):
        return per_feature_test(ref, cur, _cvm, config.p_val, config.correction)
    if isinstance(config, EvidentlyHellingerDistanceDriftMetric):
        return MetricResult(float(np.mean([hellinger(ref[:, f], cur[:, f]) for f in range(ref.shape[1])])))
    ref, cur = principal_components(ref, cur, config.num_pca_component)
    if isinstance(config, EvidentlySimpleDistanceDriftMetric):
        return mean_distance(ref, cur, config, seed)
    if isinstance(config, EvidentlyRatioDriftMetric):
        return drifted_share(ref, cur, config)
    if isinstance(config, EvidentlyModelDriftMetric):
        return classifier_auc(ref, cur, config, seed)
    raise TypeError(f"no drift metric for {type(config).__name__}")


# -- MMD ----------------------------------------------------------------------------------------------------------


def median_bandwidth(x: torch.Tensor) -> float:
    """alibi-detect's median heuristic: sigma² = half the (lower) median squared distance between rows of x."""
    squared = torch.cdist(x, x).square_().flatten()
    return float(torch.kthvalue(squared, max(len(squared) // 2, 1)).values * 0.5) ** 0.5


def _kernel(a: torch.Tensor, b: torch.Tensor, gamma: float, b_norms: torch.Tensor | None = None) -> torch.Tensor:
    """exp(-gamma |a_i - b_j|²), the squared distances as |a|² + |b|² - 2 a.b (one matrix product, as cdist
    computes them, without its square root to undo). Values below float32's smallest normal number count as it
    (e^-87, 1.6e-38): CPUs compute denormal numbers ten times slower, and far-apart embeddings give many."""
    b_norms = b.square().sum(dim=1) if b_norms is None else b_norms
    squared = torch.addmm(b_norms[None, :], a, b.T, alpha=-2).add_(a.square().sum(dim=1)[:, None]).clamp_min_(0)
    return squared.mul_(-gamma).clamp_min_(SMALLEST_EXPONENT).exp_()


def _kernel_blocks(a: torch.Tensor, b: torch.Tensor, gamma: float):
    """exp(-gamma |a_i - b_j|²) in row blocks of a (float32: half the time of float64, sums kept in float64), both
    moved by b's mean first: distances stay, and near rows far from the origin (ReLU embeddings are all positive)
    lose no precision to |a|² + |b|² - 2 a.b."""
    center = b.mean(dim=0)
    b = b - center
    b_norms = b.square().sum(dim=1)
    for start in range(0, len(a), BLOCK_ROWS):
        yield start, _kernel(a[start : start + BLOCK_ROWS] - center, b, gamma, b_norms)


def kernel_sum(a: torch.Tensor, b: torch.Tensor, gamma: float, same: bool = False) -> float:
    """The sum of the kernel matrix of a and b; `same` (b is a): without its diagonal, from its upper half."""
    if not same:
        return sum(float(block.sum(dtype=torch.float64)) for _, block in _kernel_blocks(a, b, gamma))
    total, a = 0.0, a - a.mean(dim=0)  # moved as in _kernel_blocks
    for start in range(0, len(a), BLOCK_ROWS):
        rows = a[start : start + BLOCK_ROWS]
        block = _kernel(rows, a[start:], gamma)
        own = block[:, : len(rows)]  # rows against themselves: counted once, without the diagonal
        total += 2 * float(block.sum(dtype=torch.float64)) - float(own.sum(dtype=torch.float64))
        total -= float(own.diagonal().sum(dtype=torch.float64))
    return total


def mmd(
    ref: np.ndarray,
    cur: np.ndarray,
    config: AlibiDetectMmdDriftMetric,
    seed: int,
    cache: dict | None = None,
    chunks=None,
) -> MetricResult:
    """Unbiased MMD² with k(a, b) = exp(-|a-b|² / (2 sigma²)); with `num_permutations`, its permutation-test
    p-value (the share of random splits of the pooled samples with an MMD² at least as large). `cache` keeps
    what depends on the reference alone (bandwidth, kernel sum) while the caller's reference stays the same,
    and, given `chunks` and a bandwidth of the reference, what each chunk of the current window contributes."""
    cache = {} if cache is None else cache
    device = torch.device("cuda" if config.device == "gpu" else config.device or "cpu")
    x_ref = torch.from_numpy(ref).to(device, torch.float32)
    x_cur = torch.from_numpy(cur).to(device, torch.float32)
    n, m = len(ref), len(cur)
    if not config.configure_kernel_from_x_ref:
        sigma = median_bandwidth(torch.cat([x_ref, x_cur])) or 1.0
    elif (sigma := cache.get("sigma")) is None:
        sigma = cache["sigma"] = median_bandwidth(x_ref) or 1.0
    gamma = 1.0 / (2 * sigma**2)
    if not config.num_permutations:
        if (within_ref := cache.get("within_ref")) is None or not config.configure_kernel_from_x_ref:
            within_ref = cache["within_ref"] = kernel_sum(x_ref, x_ref, gamma, same=True)
        if chunks is not None and config.configure_kernel_from_x_ref:
            within_cur, cross = chunked_kernel_sums(x_ref, chunks, gamma, cache.setdefault("chunks", {}), device)
        else:
            within_cur, cross = kernel_sum(x_cur, x_cur, gamma, same=True), kernel_sum(x_ref, x_cur, gamma)
        observed = within_ref / (n * (n - 1)) + within_cur / (m * (m - 1)) - 2 * cross / (n * m)
        drift = None if config.threshold is None else observed >= config.threshold
        return MetricResult(observed, drift, threshold=config.threshold)
    x = torch.cat([x_ref, x_cur])
    generator = torch.Generator().manual_seed(seed)
    marks = torch.cat([torch.ones(n), torch.zeros(m)])
    splits = [marks, *(marks[torch.randperm(n + m, generator=generator)] for _ in range(config.num_permutations))]
    s = torch.stack([*splits, torch.ones(n + m)], dim=1).to(device)  # 1 marks a "reference" sample; last: K 1
    ks = torch.empty(n + m, s.shape[1], dtype=torch.float64, device=device)  # K s, K's diagonal zeroed
    for start, block in _kernel_blocks(x, x, gamma):
        block[:, start : start + BLOCK_ROWS].fill_diagonal_(0.0)
        ks[start : start + BLOCK_ROWS] = (block @ s).double()
    s = s.double()
    k1, s, ks = ks[:, -1], s[:, :-1], ks[:, :-1]
    within_ref = (ks * s).sum(dim=0)  # s^T K s
    cross = (s * k1[:, None]).sum(dim=0) - within_ref  # s^T K (1 - s)
    within_cur = k1.sum() - within_ref - 2 * cross
    mmd2 = within_ref / (n * (n - 1)) + within_cur / (m * (m - 1)) - 2 * cross / (n * m)
    observed, permuted = float(mmd2[0]), mmd2[1:]
    p_val = float((permuted >= observed).double().mean())
    rank = min(int(config.p_val * len(permuted)), len(permuted) - 1)
    threshold = float(torch.sort(permuted, descending=True).values[rank])
    return MetricResult(observed, p_val < config.p_val, p_val, threshold)


def chunked_kernel_sums(x_ref: torch.Tensor, chunks, gamma: float, kept: dict, device) -> tuple[float, float]:
    """(within the current window, current against reference) kernel sums of a window given as chunks
    [(id, vectors, rows in the window or None: all)], only the first partly in it. What a whole chunk contributes
    (its row sums against the reference, its sum within itself, its row sums against each later chunk) is
    computed alone and kept in `kept` under its id, so the sums never depend on what was kept before."""
    tensors = [torch.from_numpy(vectors).to(device, torch.float32) for _, vectors, _ in chunks]
    within = cross = 0.0
    for a, (id_a, _, rows) in enumerate(chunks):
        if not len(tensors[a]):
            continue  # no readable sample in it
        parts = kept.setdefault(id_a, {})
        if "ref" not in parts:
            parts["ref"] = torch.cat([block.sum(dim=1, dtype=torch.float64)
                                      for _, block in _kernel_blocks(tensors[a], x_ref, gamma)])  # fmt: skip
        mask = slice(None) if rows is None else torch.from_numpy(rows).to(device)
        cross += float(parts["ref"][mask].sum())
        if rows is None:
            if "self" not in parts:
                parts["self"] = kernel_sum(tensors[a], tensors[a], gamma, same=True)
            within += parts["self"]
        else:
            within += kernel_sum(tensors[a][mask], tensors[a][mask], gamma, same=True)
        for b in range(a + 1, len(chunks)):
            if (id_b := chunks[b][0]) not in parts and len(tensors[b]):
                parts[id_b] = torch.cat([block.sum(dim=1, dtype=torch.float64)
                                         for _, block in _kernel_blocks(tensors[a], tensors[b], gamma)])  # fmt: skip
            if id_b in parts:
                within += 2 * float(parts[id_b][mask].sum())
    live = {id_ for id_, _, _ in chunks}
    for gone in set(kept) - live:
        del kept[gone]
    for parts in kept.values():
        for gone in [id_ for id_ in parts if isinstance(id_, tuple) and id_ not in live]:
            del parts[gone]
    return within, cross


# -- per-feature tests --------------------------------------------------------------------------------------------


def _ks(alternative: str):
    return lambda a, b: stats.ks_2samp(a, b, alternative=alternative, method="asymp")


def _cvm(a, b):
    return stats.cramervonmises_2samp(a, b)


def per_feature_test(ref: np.ndarray, cur: np.ndarray, test, p_val: float, correction: str) -> MetricResult:
    """A two-sample test on each feature; drift when a corrected p-value is significant (Bonferroni: any p below
    p_val / features; FDR: Benjamini-Hochberg at level p_val). Distance: the mean statistic."""
    results = [test(ref[:, f], cur[:, f]) for f in range(ref.shape[1])]
    statistics = np.array([r.statistic for r in results], dtype=np.float64)
    p_vals = np.nan_to_num(np.array([r.pvalue for r in results], dtype=np.float64), nan=1.0)
    features = len(p_vals)
    if correction == "bonferroni":
        threshold = p_val / features
        drift = bool((p_vals < threshold).any())
    else:
        ranked = np.sort(p_vals)
        below = ranked < p_val * np.arange(1, features + 1) / features
        drift = bool(below.any())
        threshold = float(p_val * (np.flatnonzero(below)[-1] + 1) / features) if drift else p_val / features
    return MetricResult(float(statistics.mean()), drift, float(p_vals.min()), threshold)


# -- Evidently-style metrics --------------------------------------------------------------------------------------


def principal_components(ref: np.ndarray, cur: np.ndarray, count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Both windows projected on the first `count` principal axes of the reference (None: unchanged)."""
    if count is None:
        return ref, cur
    mean = ref.mean(axis=0)
    _, _, axes = np.linalg.svd(ref - mean, full_matrices=False)
    axes = axes[: min(count, len(axes))].T
    return (ref - mean) @ axes, (cur - mean) @ axes


_DISTANCES = {
    "euclidean": spatial.distance.euclidean,
    "cosine": spatial.distance.cosine,
    "cityblock": spatial.distance.cityblock,
    "chebyshev": spatial.distance.chebyshev,
}


def mean_distance(ref: np.ndarray, cur: np.ndarray, config: EvidentlySimpleDistanceDriftMetric, seed: int):
    """The distance of the windows' means; bootstrap: drift above the `quantile_probability` quantile of the
    distances between the means of two resamples of the reference (sized as Evidently sizes them)."""
    distance_of = _DISTANCES[config.distance_metric]
    distance = float(distance_of(ref.mean(axis=0), cur.mean(axis=0)))
    if not config.bootstrap:
        return MetricResult(distance, distance > config.threshold, threshold=config.threshold)
    n, m = len(ref), len(cur)
    size_a, size_b = max(n * n // (n + m), 1), max(m * n // (n + m), 1)
    rng = np.random.default_rng(seed)
    null = [
        distance_of(ref[rng.integers(0, n, size_a)].mean(axis=0), ref[rng.integers(0, n, size_b)].mean(axis=0))
        for _ in range(BOOTSTRAPS)
    ]
    threshold = float(np.percentile(null, 100 * config.quantile_probability))
    return MetricResult(distance, distance > threshold, threshold=threshold)


def component_drifted(ref: np.ndarray, cur: np.ndarray, stattest: str, threshold: float) -> bool:
    """Evidently's per-column tests: normed Wasserstein distance, KS p-value or Hellinger distance."""
    if stattest == "wasserstein":
        return stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001) >= threshold
    if stattest == "ks":
        return stats.ks_2samp(ref, cur).pvalue < threshold
    return hellinger(ref, cur) >= threshold


def drifted_share(ref: np.ndarray, cur: np.ndarray, config: EvidentlyRatioDriftMetric) -> MetricResult:
    drifted = [
        component_drifted(ref[:, f], cur[:, f], config.component_stattest, config.component_stattest_threshold)
        for f in range(ref.shape[1])
    ]
    share = float(np.mean(drifted))
    return MetricResult(share, share > config.threshold, threshold=config.threshold)


def hellinger(ref: np.ndarray, cur: np.ndarray) -> float:
    """Hellinger distance between the two samples' density histograms, on Sturges bins over their distinct values."""
    values = np.unique(np.concatenate([ref, cur]))
    if len(values) < 2:
        return 0.0  # one value in both: the same distribution
    edges = np.histogram_bin_edges(values, bins="sturges")
    width = (values[-1] - values[0]) / (len(edges) - 1)
    p = np.histogram(ref, bins=edges, density=True)[0]
    q = np.histogram(cur, bins=edges, density=True)[0]
    overlap = float(np.clip(np.sum(np.sqrt(p * q)) * width, 0.0, 1.0))
    return (1.0 - overlap) ** 0.5


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic over the positives (ties count half)."""
    ranks = stats.rankdata(scores)
    positives = labels.astype(bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classifier_auc(ref: np.ndarray, cur: np.ndarray, config: EvidentlyModelDriftMetric, seed: int) -> MetricResult:
    """Train a logistic regression to tell reference (1) from current (0) on a random half, score the other
    half: ROC AUC near 0.5 means the windows look alike. Bootstrap: drift above the `quantile_probability`
    quantile of the AUCs of random scores."""
    x = np.concatenate([ref, cur])
    y = np.concatenate([np.ones(len(ref)), np.zeros(len(cur))])
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    train, test = order[: len(x) // 2], order[len(x) // 2 :]
    mean, scale = x[train].mean(axis=0), x[train].std(axis=0) + 1e-8
    features = torch.from_numpy((x - mean) / scale)
    targets = torch.from_numpy(y)
    weights = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = features[train] @ weights[:-1] + weights[-1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets[train])
        loss = loss + 1e-4 * weights.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        scores = (features[test] @ weights[:-1] + weights[-1]).numpy()
    auc = roc_auc(y[test], scores)
    if not config.bootstrap:
        return MetricResult(auc, auc > config.threshold, threshold=config.threshold)
    null = [roc_auc(y[test], rng.random(len(test))) for _ in range(BOOTSTRAPS)]
    threshold = float(np.percentile(null, 100 * config.quantile_probability))
    return MetricResult(auc, auc > threshold, threshold=threshold)
