"""A model's embeddings: the input of its last layer (Modyn's `CoresetSupportingModule` embeddings), taken with a
forward pre-hook so no model needs code of its own for it. Drift detection and downsampling read them.

>>> from modyn_stream.training.models import build_model
>>> model = build_model("YearbookNet", {"num_input_channels": 1, "num_classes": 2})
>>> outputs, embedded = forward_with_embeddings(model, torch.zeros(3, 1, 32, 32))
>>> outputs.shape, embedded.shape
(torch.Size([3, 2]), torch.Size([3, 32]))
"""

from __future__ import annotations

import torch
from torch import nn

from modyn_stream.training.exceptions import TrainingError

LAST_LAYER_NAMES = ("classifier", "fc", "head", "output")


def last_layer(model: nn.Module) -> nn.Module:
    """The layer that maps embeddings to outputs: a named head, else the last Linear of the model."""
    for name in LAST_LAYER_NAMES:
        if isinstance(layer := getattr(model, name, None), nn.Module):
            return layer
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise TrainingError(f"{type(model).__name__} has no last layer to take embeddings from")
    return linears[-1]


def forward_with_embeddings(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs for `x` and the embeddings it computed on the way (flattened per sample)."""
    seen: list[torch.Tensor] = []
    hook = last_layer(model).register_forward_pre_hook(lambda _, inputs: seen.append(inputs[0]))
    try:
        outputs = model(x)
    finally:
        hook.remove()
    if not seen:
        raise TrainingError(f"{type(model).__name__} did not call its last layer")
    return outputs, seen[-1].reshape(len(x), -1)
