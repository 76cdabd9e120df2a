"""Models by id: MLP, SmallCNN, TabularDLRM, Modyn's zoo (training/zoo.py: YearbookNet, SmallYearbookNet,
FmowNet, ResNet18/50/152, Dummy); or `module:Class` where the operator trusts its module.

Every model takes its YAML `model.config` as keyword arguments.

>>> model = build_model("MLP", {"in_features": 4, "num_classes": 3, "hidden": [8]})
>>> model(torch.zeros(2, 4)).shape
torch.Size([2, 3])
>>> build_model("SmallCNN", {"num_classes": 10, "in_channels": 1})(torch.zeros(5, 1, 8, 8)).shape
torch.Size([5, 10])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from difflib import get_close_matches

import torch
from torch import nn

from modyn_stream.pipeline.trust import NOBODY, CodeTrust
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.zoo import ZOO, architecture_only


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks and a linear head: enough for 8x8 to 32x32 digit-like images."""

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


class TabularDLRM(nn.Module):
    """DLRM-style: dense features through an MLP, categorical ones through embeddings, pairwise dot interactions.

    Input: float rows of `num_dense` dense values followed by one category id per entry of `cardinalities`.
    """

    def __init__(
        self, num_dense: int, cardinalities: Sequence[int], num_classes: int, embedding_dim: int = 16,
        hidden: Sequence[int] = (64,),
    ):  # fmt: skip
        super().__init__()
        self.num_dense = num_dense
        self.bottom = nn.Sequential(nn.Linear(num_dense, embedding_dim), nn.ReLU())
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        fields = 1 + len(cardinalities)
        width = embedding_dim + fields * (fields - 1) // 2
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.top = nn.Sequential(*layers, nn.Linear(width, num_classes))
        self._pairs = torch.triu_indices(fields, fields, offset=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense = self.bottom(x[:, : self.num_dense].float())  # float64 from the criteo decoder: exact ids
        ids = x[:, self.num_dense :].long()
        vectors = torch.stack([dense, *(emb(ids[:, i]) for i, emb in enumerate(self.embeddings))], dim=1)
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self._pairs[0], self._pairs[1]]
        return self.top(torch.cat([dense, dots], dim=1))


MODELS: dict[str, Callable[..., nn.Module]] = {"MLP": MLP, "SmallCNN": SmallCNN, "TabularDLRM": TabularDLRM, **ZOO}


def build_model(model_id: str, config: dict, *, trust: CodeTrust = NOBODY) -> nn.Module:
    """A built-in model by id, or `module:Class` if the operator trusts that module (`trust`)."""
    if ":" in model_id:
        factory = trust.load(model_id, "model.id")
    elif model_id in MODELS:
        factory = MODELS[model_id]
    else:
        near = get_close_matches(model_id, MODELS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else f"; known: {', '.join(MODELS)}"
        raise TrainingError(f"unknown model {model_id!r}{hint}")
    try:
        return factory(**config)
    except TypeError as exc:
        raise TrainingError(f"model {model_id}: bad config {config}: {exc}") from None


def model_with_weights(model_id: str, config: dict, state_dict: dict, *, trust: CodeTrust = NOBODY) -> nn.Module:
    """A model holding `state_dict`, built without drawing initial weights.

    Building on the meta device skips the random initialisation, which would be overwritten anyway,
    and leaves torch's global random generator alone (a trainer seeds it for its initial weights).
    """
    with torch.device("meta"), architecture_only():
        model = build_model(model_id, config, trust=trust)
    model.load_state_dict(state_dict, assign=True)
    if any(t.is_meta for t in (*model.parameters(), *model.buffers())):  # buffers the state does not hold
        with torch.random.fork_rng(devices=[]), architecture_only():  # (DistilBERT's position ids): built for real
            model = build_model(model_id, config, trust=trust)
        model.load_state_dict(state_dict)
    return model
