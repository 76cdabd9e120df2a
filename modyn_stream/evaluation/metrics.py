"""Metrics over a whole window's model outputs at once (tensor ops, no per-sample Python).

>>> import torch
>>> logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.0]])
>>> labels = torch.tensor([0, 2, 2, 1])
>>> accuracy(logits, labels, 1), accuracy(logits, labels, 2)
(0.5, 0.75)
>>> round(roc_auc(torch.tensor([[0.0, 0.1], [0.0, 0.9], [0.0, 0.4], [0.0, 0.8]]), torch.tensor([0, 1, 0, 1])), 3)
1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from modyn_stream.pipeline.schema.evaluation import Metric


def metric_name(metric: Metric) -> str:
    if metric.name == "Accuracy":
        return f"Accuracy(top{metric.topn})"
    if metric.name == "F1Score":
        return f"F1Score({metric.average})"
    return metric.name


def compute(metric: Metric, logits: torch.Tensor, labels: torch.Tensor) -> float:
    if metric.name == "Accuracy":
        return accuracy(logits, labels, metric.topn)
    if metric.name == "F1Score":
        return f1_score(logits, labels, metric.average, metric.num_classes, metric.pos_label)
    return roc_auc(logits, labels)


def predicted(logits: torch.Tensor) -> torch.Tensor:
    """The predicted classes: the largest output, or for one output (a logit) class 1 where sigmoid >= 0.5."""
    return logits.argmax(dim=1) if logits.shape[1] > 1 else (logits[:, 0] >= 0).long()


def accuracy(logits: torch.Tensor, labels: torch.Tensor, topn: int = 1) -> float:
    if logits.shape[1] == 1:
        return float((predicted(logits) == labels).float().mean())
    top = logits.topk(min(topn, logits.shape[1]), dim=1).indices
    return float((top == labels[:, None]).any(dim=1).float().mean())


def f1_score(
    logits: torch.Tensor, labels: torch.Tensor, average: str, num_classes: int | None = None, pos_label: int = 1
) -> float:
    classes = num_classes or max(logits.shape[1], int(labels.max()) + 1, pos_label + 1)
    cells = torch.bincount(labels * classes + predicted(logits), minlength=classes * classes)
    confusion = cells.reshape(classes, classes)
    tp = confusion.diag().double()
    fp, fn = confusion.sum(0).double() - tp, confusion.sum(1).double() - tp
    if average == "micro":
        return float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()).clamp(min=1))
    per_class = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    if average == "binary":
        return float(per_class[pos_label])
    if average == "weighted":
        support = confusion.sum(1).double()
        return float((per_class * support).sum() / support.sum().clamp(min=1))
    present = (confusion.sum(0) + confusion.sum(1)) > 0  # macro over classes that occur
    return float(per_class[present].mean())


def roc_auc(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Binary AUC (Mann-Whitney, ties averaged); with more classes the macro one-vs-rest mean."""
    if logits.shape[1] <= 2:
        scores = logits[:, -1] if logits.shape[1] == 2 else logits[:, 0]
        return _binary_auc(scores, labels == 1)
    probabilities = F.softmax(logits.double(), dim=1)
    aucs = [_binary_auc(probabilities[:, c], labels == c) for c in range(logits.shape[1])]
    defined = [a for a in aucs if a == a]
    return sum(defined) / len(defined) if defined else float("nan")


def _binary_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined with one class only
    order = scores.double().argsort()
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    _, inverse, counts = torch.unique(scores.double(), return_inverse=True, return_counts=True)
    mean_rank = torch.zeros(len(counts), dtype=torch.float64).index_add_(0, inverse, ranks) / counts
    ranks = mean_rank[inverse]
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def loss(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.double(), labels))
