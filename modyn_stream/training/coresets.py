"""Coreset downsampling: Modyn's strategies that pick a set rather than score samples one by one. Each sample is a
row of a matrix, its embedding (the input of the model's last layer) or the gradient of its loss at the last layer
(`LastLayer`: with respect to the outputs; `LastLayerWithEmbedding`: also with respect to the last layer's
weights, the outer product of that gradient and the embedding), and a set-level rule picks k rows.

* `KcenterGreedy` (Sener & Savarese 2018): on embeddings, a seeded random first centre, then again and again the
  sample farthest (Euclidean) from every centre so far; weight 1.
* `Submodular`: greedy maximisation of a submodular function of the gradients' similarity (0.5 + 0.5 cosine, so
  every similarity is in [0, 1]): `FacilityLocation` (sum over samples of the similarity to its closest pick),
  `GraphCut` (similarity to all samples minus twice the similarity within the picks), `LogDeterminant` (log det of
  the picks' similarity matrix); weight 1.
* `Craig` (Mirzasoleiman et al. 2020): facility location on the gradients' similarity within each class (the
  largest distance in the class minus the distance, plus 1e-3; 0 across classes); each pick is weighted by the
  number of its class's samples closest to it (itself included), so the picks' weighted gradient approximates
  the set's.
* `GradMatch` (Killamsetty et al. 2021): orthogonal matching pursuit of the mean gradient by the samples'
  gradients, each step the sample most aligned with what is left unexplained, then non-negative weights by
  regularised least squares (lambda 1); samples weighted 0 are dropped, so it may keep fewer than k.

The greedy optimisers are Modyn's: `NaiveGreedy` (every gain each step), `LazyGreedy` (Minoux's stale upper
bounds, refreshed 32 at a time: the same picks for a submodular function, far fewer gains), `StochasticGreedy`
(each step the best of a seeded random sample of round(ln(1/0.9) n / k) candidates, at least one, as Modyn) and
`ApproximateLazyGreedy` (lazy, taking a candidate whose fresh gain is at least 0.9 of its bound).
`selection_batch` is how many rows of the similarity a gain is summed over at a time: it bounds memory, never
the picks. Unlike Modyn's, LogDeterminant's gain is the log-determinant's own increase, GraphCut's counts the
candidate's similarity to itself, and Craig's weights are exactly the sizes of the picks' clusters (Modyn's add
one to each).

>>> points = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [0.0, 4.0]])
>>> sorted(k_center_greedy(points, 3, torch.Generator().manual_seed(0)).tolist())  # never both of the close two
[0, 2, 3]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import nnls
from torch import nn

STOCHASTIC_EPSILON = 0.9  # Modyn's (DeepCore's) epsilon of StochasticGreedy
APPROXIMATE_BETA = 0.9  # and the bound fraction of ApproximateLazyGreedy
LAZY_BLOCK = 32  # LazyGreedy refreshes this many of the highest bounds at a time (the same picks, fewer calls)


def output_gradients(outputs: torch.Tensor, targets: torch.Tensor, per_sample_loss: Callable) -> torch.Tensor:
    """Each sample's gradient of its loss with respect to the model's outputs, one row per sample."""
    if isinstance(per_sample_loss, nn.CrossEntropyLoss) and outputs.dim() == 2:  # closed form: softmax - one hot
        return F.softmax(outputs, dim=1) - F.one_hot(targets, outputs.shape[1])
    outputs = outputs.detach().requires_grad_(True)
    with torch.enable_grad():
        (gradients,) = torch.autograd.grad(per_sample_loss(outputs, targets).sum(), outputs)
    return gradients.reshape(len(outputs), -1)


def last_layer_gradients(output_gradient: torch.Tensor, embeddings: torch.Tensor | None) -> torch.Tensor:
    """The gradient at the last layer's bias (the outputs' gradient), and with `embeddings` also at its weights."""
    if embeddings is None:
        return output_gradient
    weights = output_gradient[:, :, None] * embeddings[:, None, :]
    return torch.cat([output_gradient, weights.flatten(1)], dim=1)


def k_center_greedy(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k centres: a random first one, then each time the point farthest from all centres chosen."""
    points = points.double()
    chosen = [int(torch.randint(len(points), (1,), generator=generator))]
    nearest = torch.cdist(points, points[chosen]).flatten()
    for _ in range(min(k, len(points)) - 1):
        nearest[chosen[-1]] = -1.0
        chosen.append(int(torch.argmax(nearest)))
        nearest = torch.minimum(nearest, torch.cdist(points, points[chosen[-1] : chosen[-1] + 1]).flatten())
    return torch.tensor(chosen)


def cosine_similarity(rows: torch.Tensor) -> torch.Tensor:
    """0.5 + 0.5 cos between every two rows (a zero row is at cosine 0 from every other)."""
    unit = F.normalize(rows.double(), dim=1)
    return 0.5 + 0.5 * unit @ unit.T


class FacilityLocation:
    """f(A) = sum over all samples i of max over j in A of s[i, j] (0 for no picks)."""

    def __init__(self, similarity: torch.Tensor, rows: int) -> None:
        self.s, self.rows = similarity, rows
        self.best = torch.zeros(len(similarity), dtype=similarity.dtype)

    def gains(self, candidates: torch.Tensor) -> torch.Tensor:
        every = 4 * len(candidates) > len(self.s)  # most columns: cheaper to sum them all than to gather them
        total = torch.zeros(len(self.s) if every else len(candidates), dtype=self.s.dtype)
        for start in range(0, len(self.s), self.rows):
            block = self.s[start : start + self.rows]
            total += (block if every else block[:, candidates]).sub(self.best[start : start + self.rows, None]) \
                .clamp_(min=0).sum(0)  # fmt: skip
        return total[candidates] if every else total

    def add(self, j: int) -> None:
        self.best = torch.maximum(self.best, self.s[:, j])


class GraphCut:
    """f(A) = sum over i in V, j in A of s[i, j] minus the sum over i, j in A of s[i, j]."""

    def __init__(self, similarity: torch.Tensor, rows: int) -> None:
        self.s = similarity
        self.column_sums = torch.cat([similarity[i : i + rows].sum(0, keepdim=True)
                                      for i in range(0, len(similarity), rows)]).sum(0)  # fmt: skip
        self.within = torch.zeros(len(similarity), dtype=similarity.dtype)  # sum over j in A of s[j, c]

    def gains(self, candidates: torch.Tensor) -> torch.Tensor:
        return self.column_sums[candidates] - 2 * self.within[candidates] - self.s[candidates, candidates]

    def add(self, j: int) -> None:
        self.within += self.s[j]


class LogDeterminant:
    """f(A) = log det of s restricted to A; the gain of c is log of its variance left after conditioning on A,
    kept up to date by an incremental Cholesky factorisation (as greedy DPP inference does)."""

    def __init__(self, similarity: torch.Tensor, rows: int) -> None:
        self.s = similarity
        self.left = similarity.diagonal().clone()  # s[c, c] - s[c, A] s[A, A]^-1 s[A, c]
        self.factors: list[torch.Tensor] = []

    def gains(self, candidates: torch.Tensor) -> torch.Tensor:
        return torch.log(self.left[candidates].clamp(min=1e-12))

    def add(self, j: int) -> None:
        residual = self.s[j] - sum((f[j] * f for f in self.factors), torch.zeros_like(self.left))
        factor = residual / math.sqrt(max(float(self.left[j]), 1e-12))
        self.factors.append(factor)
        self.left = self.left - factor**2


SUBMODULAR_FUNCTIONS = {"FacilityLocation": FacilityLocation, "GraphCut": GraphCut, "LogDeterminant": LogDeterminant}


def greedy(function, n: int, k: int, optimizer: str, generator: torch.Generator) -> list[int]:
    """k picks that (approximately) maximise the submodular `function` of n samples, in the order picked."""
    k = min(k, n)
    picked: list[int] = []
    free = torch.ones(n, dtype=torch.bool)
    if optimizer in ("NaiveGreedy", "StochasticGreedy"):  # each step the best of every free sample, or of a sample
        size = max(round(-math.log(STOCHASTIC_EPSILON) * n / k), 1)
        while len(picked) < k:
            pool = torch.nonzero(free).flatten()
            if optimizer == "StochasticGreedy":
                pool = pool[torch.randperm(len(pool), generator=generator)[:size]]
            picked.append(int(pool[torch.argmax(function.gains(pool))]))
            free[picked[-1]] = False
            function.add(picked[-1])
        return picked
    bounds = function.gains(torch.arange(n)).clone()  # lazy: a gain only shrinks as picks are added
    while len(picked) < k:
        if optimizer == "ApproximateLazyGreedy":  # Modyn's: one candidate at a time, within beta of its bound
            best = int(torch.argmax(bounds))
            stale, fresh = float(bounds[best]), float(function.gains(torch.tensor([best]))[0])
            bounds[best] = fresh
            if fresh < APPROXIMATE_BETA * stale:
                continue
        else:  # Minoux's, LAZY_BLOCK candidates at once: a fresh gain above every other bound is the true best
            top = torch.argsort(bounds, descending=True, stable=True)[: min(LAZY_BLOCK, n - len(picked))]
            bounds[top] = function.gains(top)
            best = int(top[torch.argmax(bounds[top])])
            others = bounds.clone()
            others[top] = -math.inf
            if bounds[best] < others.max():
                continue
        picked.append(best)
        bounds[best] = -math.inf
        function.add(best)
    return picked


def submodular(rows: torch.Tensor, k: int, function: str, optimizer: str, selection_batch: int, generator):
    """Modyn's Submodular strategy: k picks of `function` on the rows' cosine similarity, weight 1."""
    similarity = cosine_similarity(rows)
    picks = greedy(SUBMODULAR_FUNCTIONS[function](similarity, selection_batch), len(rows), k, optimizer, generator)
    return torch.tensor(picks), torch.ones(len(picks))


def craig(rows: torch.Tensor, labels: torch.Tensor, k: int, optimizer: str, selection_batch: int, generator):
    """Modyn's Craig strategy: facility location within classes, each pick weighted by its cluster's size."""
    rows = rows.double()
    similarity = torch.zeros(len(rows), len(rows), dtype=torch.float64)
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        distances = torch.cdist(rows[members], rows[members])
        similarity[members[:, None], members] = distances.max() - distances + 1e-3
    picks = torch.tensor(greedy(FacilityLocation(similarity, selection_batch), len(rows), k, optimizer, generator))
    closest = similarity[:, picks]
    assigned = closest.max(1).values > 0  # a sample of a class with no pick has no cluster
    sizes = torch.bincount(closest.argmax(1)[assigned], minlength=len(picks))
    return picks, sizes.float()


def grad_match(rows: torch.Tensor, k: int, regularisation: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Modyn's GradMatch: orthogonal matching pursuit of the mean row, then non-negative weights."""
    a = rows.double().numpy()
    target = a.mean(0)
    chosen: list[int] = []
    residual = target.copy()
    free = np.ones(len(a), dtype=bool)
    for _ in range(min(k, len(a))):
        projections = np.where(free, a @ residual, -np.inf)
        chosen.append(int(np.argmax(projections)))
        free[chosen[-1]] = False
        picked = a[chosen]
        gram = picked @ picked.T + regularisation * np.eye(len(chosen))
        residual = target - picked.T @ np.linalg.solve(gram, picked @ target)
    picked = a[chosen]
    weights = nnls(picked @ picked.T + regularisation * np.eye(len(chosen)), picked @ target)[0]
    kept = np.nonzero(weights > 0)[0]
    if not len(kept):  # nothing explains the mean (all gradients zero): keep the first pick
        return torch.tensor(chosen[:1]), torch.ones(1)
    return torch.tensor(chosen)[kept], torch.from_numpy(weights[kept]).float()
