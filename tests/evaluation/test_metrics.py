"""Metrics against plain-Python references written from their definitions."""

import math

import pytest
import torch

from modyn_stream.evaluation.metrics import accuracy, compute, f1_score, loss, metric_name, roc_auc
from modyn_stream.pipeline.schema.evaluation import Metric


def random_case(seed: int, n: int = 200, classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=generator).round(decimals=1)  # rounding makes ties
    labels = torch.randint(0, classes, (n,), generator=generator)
    return logits, labels


def reference_f1(predicted: list[int], labels: list[int], average: str, classes: int) -> float:
    counts = {c: {"tp": 0, "fp": 0, "fn": 0} for c in range(classes)}
    for p, y in zip(predicted, labels, strict=True):
        if p == y:
            counts[y]["tp"] += 1
        else:
            counts[p]["fp"] += 1
            counts[y]["fn"] += 1

    def f1(tp, fp, fn):
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0

    if average == "micro":
        return f1(*(sum(c[k] for c in counts.values()) for k in ("tp", "fp", "fn")))
    if average == "binary":
        return f1(**counts[1])
    occurring = [c for c in range(classes) if counts[c]["tp"] + counts[c]["fp"] + counts[c]["fn"]]
    if average == "macro":
        return sum(f1(**counts[c]) for c in occurring) / len(occurring)
    support = {c: labels.count(c) for c in range(classes)}
    return sum(f1(**counts[c]) * support[c] for c in range(classes)) / len(labels)


def reference_auc(scores: list[float], positive: list[bool]) -> float:
    """The probability that a random positive outscores a random negative, ties counting one half."""
    pairs = [(s, t) for s, p in zip(scores, positive, strict=True) if p
             for t, q in zip(scores, positive, strict=True) if not q]  # fmt: skip
    return sum(1.0 if s > t else 0.5 if s == t else 0.0 for s, t in pairs) / len(pairs)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("topn", [1, 2, 3])
def test_accuracy_counts_a_hit_when_the_label_is_among_the_top_n(seed, topn):
    logits, labels = random_case(seed)
    ranked = [sorted(range(4), key=lambda c, row=row: (-row[c], c)) for row in logits.tolist()]
    # ties at the cut are rare after rounding; only rows without a tie at the n-th place are compared
    clear = [
        i for i, row in enumerate(logits.tolist()) if topn == 4 or row[ranked[i][topn - 1]] != row[ranked[i][topn]]
    ]
    hits = sum(labels[i].item() in ranked[i][:topn] for i in clear)
    index = torch.tensor(clear)
    assert accuracy(logits[index], labels[index], topn) == pytest.approx(hits / len(clear))


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", "binary"])
@pytest.mark.parametrize("seed", range(3))
def test_f1_score_matches_its_definition_for_every_average(seed, average):
    logits, labels = random_case(seed)
    logits[:, 3] -= 10  # class 3 is never predicted: its F1 is 0 and still counts where it occurs
    predicted = logits.argmax(dim=1).tolist()
    expected = reference_f1(predicted, labels.tolist(), average, 4)
    assert f1_score(logits, labels, average) == pytest.approx(expected)


def test_binary_f1_of_a_single_logit_thresholds_at_zero():
    logits = torch.tensor([[1.5], [-0.5], [0.2], [-2.0]])
    labels = torch.tensor([1, 1, 0, 0])
    assert f1_score(logits, labels, "binary", num_classes=2) == pytest.approx(reference_f1([1, 0, 1, 0], [1, 1, 0, 0],
                                                                                           "binary", 2))  # fmt: skip


def test_binary_f1_scores_the_class_pos_label_names_and_accuracy_thresholds_a_single_logit():
    logits = torch.tensor([[1.5], [-0.5], [0.0], [-2.0], [-1.0]])
    labels = torch.tensor([1, 1, 0, 0, 0])
    predicted = [1, 0, 1, 0, 0]  # sigmoid >= 0.5, as Modyn's torch.ge(torch.sigmoid(x), 0.5)

    def f1_of(c):
        tp = sum(p == y == c for p, y in zip(predicted, labels.tolist(), strict=True))
        fp = sum(p == c != y for p, y in zip(predicted, labels.tolist(), strict=True))
        fn = sum(y == c != p for p, y in zip(predicted, labels.tolist(), strict=True))
        return 2 * tp / (2 * tp + fp + fn)

    assert f1_of(0) != f1_of(1)
    assert f1_score(logits, labels, "binary", 2, pos_label=0) == pytest.approx(f1_of(0))
    assert f1_score(logits, labels, "binary", 2, pos_label=1) == pytest.approx(f1_of(1))
    assert accuracy(logits, labels) == pytest.approx(3 / 5)


@pytest.mark.parametrize("seed", range(3))
def test_binary_roc_auc_is_the_pairwise_ranking_probability_with_ties_halved(seed):
    logits, labels = random_case(seed, classes=2)
    labels = labels.bool()
    expected = reference_auc(logits[:, 1].tolist(), labels.tolist())
    assert roc_auc(logits, labels.long()) == pytest.approx(expected)
    assert roc_auc(logits[:, 1:], labels.long()) == pytest.approx(expected)  # one logit: the positive score


def test_multiclass_roc_auc_is_the_macro_mean_of_one_vs_rest_on_probabilities():
    logits, labels = random_case(5, n=120, classes=3)
    probabilities = torch.softmax(logits.double(), dim=1)
    expected = [reference_auc(probabilities[:, c].tolist(), (labels == c).tolist()) for c in range(3)]
    assert roc_auc(logits, labels) == pytest.approx(sum(expected) / 3)


def test_roc_auc_with_one_class_only_is_undefined():
    assert math.isnan(roc_auc(torch.tensor([[0.1, 0.9], [0.3, 0.2]]), torch.tensor([1, 1])))


def test_loss_is_the_mean_cross_entropy():
    logits, labels = random_case(1, n=50)
    expected = sum(-math.log(math.exp(row[y]) / sum(math.exp(v) for v in row))
                   for row, y in zip(logits.tolist(), labels.tolist(), strict=True)) / 50  # fmt: skip
    assert loss(logits, labels) == pytest.approx(expected)


def test_metric_names_say_their_parameters_and_compute_dispatches_on_them():
    logits, labels = random_case(2)
    for metric, name, value in [
        (Metric(name="Accuracy", topn=2), "Accuracy(top2)", accuracy(logits, labels, 2)),
        (Metric(name="F1Score", average="weighted"), "F1Score(weighted)", f1_score(logits, labels, "weighted")),
        (Metric(name="RocAuc"), "RocAuc", roc_auc(logits, labels)),
    ]:
        assert metric_name(metric) == name and compute(metric, logits, labels) == value
    assert len({metric_name(Metric(name="Accuracy", topn=n)) for n in range(1, 4)}) == 3
