"""In-trainer downsampling, batch then sample (Modyn's BtS): each batch is scored by the current model, a
`ratio` of `ratio_max` of it is kept, and kept samples are trained on with weights, as Modyn's trainer does;
sample then batch scores the whole training set the same way and keeps a ratio of it. The coreset strategies
(KcenterGreedy, Submodular, Craig, GradMatch) are in training/coresets.py.

* `Loss`: kept at random with probability proportional to the loss (without replacement, from the seeded
  generator), weighted 1 / (N p) to keep the gradient unbiased (Katharopoulos & Fleuret 2018).
* `GradNorm`: the same with the norm of the loss gradient at the model's outputs.
* `Uncertainty`: the most uncertain kept, weight 1: the lowest largest logit (`LeastConfidence`, as
  Modyn's), the highest entropy (`Entropy`) or the smallest gap between the two likeliest classes (`Margin`).

The kept parts of `batch_size / kept` batches make one training batch (Modyn's accumulation), whose loss
is the weighted mean sum(w * loss) / sum(w).

`RS2` (Okanovic et al. 2024) samples then batches, without scoring: each epoch trains on a random
`ratio` of the whole training set, weight 1; with replacement a new draw each epoch, without it the parts of
one shuffle in turn (every sample once per N / size epochs), then a new shuffle, as Modyn's RS2.

>>> scores = torch.tensor([0.0, 1.0, 3.0])
>>> proportional(scores, 1, torch.Generator().manual_seed(0))[0].tolist()  # the zero-loss sample never
[2]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
from modyn_stream.training.coresets import (
    craig,
    grad_match,
    k_center_greedy,
    last_layer_gradients,
    output_gradients,
    submodular,
)
from modyn_stream.training.embeddings import forward_with_embeddings


def proportional(scores: torch.Tensor, k: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """k indices drawn with probability proportional to `scores`, and their weights 1 / (N p)."""
    scores = scores.detach().double().cpu()  # drawn on the CPU, from the seeded generator
    total = scores.sum()
    probabilities = scores / total if total > 0 else torch.full_like(scores, 1 / len(scores))
    chosen = torch.multinomial(probabilities, k, replacement=False, generator=generator)
    return chosen, (1.0 / (len(scores) * probabilities[chosen])).float()


def uncertainty(outputs: torch.Tensor, metric: str) -> torch.Tensor:
    """Modyn's uncertainty scores: the lower, the more uncertain."""
    if outputs.dim() == 1:
        outputs = outputs[:, None]
    if metric == "LeastConfidence":
        return outputs.abs()[:, 0] if outputs.shape[1] == 1 else outputs.max(dim=1).values
    if outputs.shape[1] == 1:
        positive = torch.sigmoid(outputs)
        probabilities = torch.cat([1 - positive, positive], dim=1)
    else:
        probabilities = F.softmax(outputs, dim=1)
    if metric == "Entropy":
        return (torch.log(probabilities + 1e-6) * probabilities).sum(dim=1)  # the negative entropy
    top = probabilities.topk(2, dim=1).values
    return top[:, 0] - top[:, 1]  # Margin


def gradient_norms(outputs: torch.Tensor, targets: torch.Tensor, per_sample_loss: Callable) -> torch.Tensor:
    """Norms of each sample's loss gradient with respect to the model's outputs."""
    return torch.linalg.vector_norm(output_gradients(outputs, targets, per_sample_loss), dim=1)


def scores(config: DownsamplingConfig, model: nn.Module, x: torch.Tensor, targets: torch.Tensor, per_sample_loss):
    """What the strategy selects by (on the CPU), under the model in eval mode, without gradients to the weights,
    as Modyn scores: each sample's loss, gradient norm or certainty (the lower, the more uncertain), or for the
    coreset strategies (training/coresets.py) a row per sample, its embedding or its last-layer gradient."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            with_embedding = (
                config.strategy == "KcenterGreedy" or config.full_grad_approximation == "LastLayerWithEmbedding"
            )
            outputs, embeddings = forward_with_embeddings(model, x) if with_embedding else (model(x), None)
        if config.strategy in ("Loss", "RHOLoss"):
            return per_sample_loss(outputs, targets).reshape(len(x), -1).mean(1).cpu()
        if config.strategy == "GradNorm":
            return gradient_norms(outputs, targets, per_sample_loss).cpu()
        if config.strategy == "Uncertainty":
            return uncertainty(outputs, config.score_metric).cpu()
        if config.strategy == "KcenterGreedy":
            return embeddings.cpu()
        return last_layer_gradients(output_gradients(outputs, targets, per_sample_loss), embeddings).cpu()
    finally:
        model.train(was_training)


def choose(config: DownsamplingConfig, scored: torch.Tensor, labels: torch.Tensor, k: int, generator):
    """k of the scored samples (indices) and their weights: drawn in proportion to the score (Loss, GradNorm), the
    most uncertain (Uncertainty, weight 1), or a coreset of their rows (training/coresets.py)."""
    if config.strategy in ("Loss", "GradNorm"):
        return proportional(scored, k, generator)
    if config.strategy == "Uncertainty":
        return torch.argsort(scored, stable=True)[:k], torch.ones(k)
    if config.strategy == "RHOLoss":  # scored: the reducible loss, training loss minus irreducible loss
        return torch.argsort(scored, descending=True, stable=True)[:k], torch.ones(k)
    if config.strategy == "KcenterGreedy":
        return k_center_greedy(scored, k, generator), torch.ones(min(k, len(scored)))
    if config.strategy == "Submodular":
        return submodular(scored, k, config.submodular_function, config.submodular_optimizer,
                          config.selection_batch, generator)  # fmt: skip
    if config.strategy == "Craig":
        return craig(scored, labels.cpu(), k, config.greedy, config.selection_batch, generator)
    return grad_match(scored, k)


def select(
    config: DownsamplingConfig,
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    per_sample_loss: Callable,
    k: int,
    generator: torch.Generator,
    irreducible: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The indices of the batch's samples to train on, and their weights (batch then sample); RHO-Loss scores
    by the loss above each sample's `irreducible` loss."""
    scored = scores(config, model, x, targets, per_sample_loss)
    if irreducible is not None:
        scored = scored - irreducible
    chosen, weights = choose(config, scored, targets, k, generator)
    return chosen.to(x.device), weights.to(x.device)


def scored_subset(config: DownsamplingConfig, model, x, y, per_sample_loss, batch_size: int, generator, device,
                  irreducible: torch.Tensor | None = None):  # fmt: skip
    """Sample then batch: (mask over the training set, the weights of the samples it keeps) from scoring all of
    it in batches; `balance` keeps `ratio` of each class (in label order) instead of `ratio` of the whole."""
    scored = torch.cat([scores(config, model, x[i : i + batch_size].to(device), y[i : i + batch_size].to(device),
                               per_sample_loss) for i in range(0, len(x), batch_size)])  # fmt: skip
    if irreducible is not None:
        scored = scored - irreducible
    groups = [torch.nonzero(y == label).flatten() for label in torch.unique(y)] if config.balance else [None]
    mask, weights = torch.zeros(len(x), dtype=torch.bool), torch.zeros(len(x))
    for members in groups:
        members = torch.arange(len(x)) if members is None else members
        chosen, kept_weights = choose(config, scored[members], y[members], config.kept(len(members)), generator)
        mask[members[chosen]] = True
        weights[members[chosen]] = kept_weights
    return mask, weights[mask]


def rs2_subsets(config: DownsamplingConfig, samples: int, epochs: int, generator: torch.Generator) -> list:
    """For each epoch, (a mask of the training set's samples (in manifest order) RS2 trains on, None: weight 1)."""
    size = max(config.ratio * samples // config.ratio_max, 1)
    parts = max(samples // size, 1)
    masks, order = [], None
    for epoch in range(epochs):
        if config.with_replacement or epoch % parts == 0:
            order = torch.randperm(samples, generator=generator)
        part = 0 if config.with_replacement else epoch % parts
        mask = torch.zeros(samples, dtype=torch.bool)
        mask[order[part * size : (part + 1) * size]] = True
        masks.append((mask, None))
    return masks
