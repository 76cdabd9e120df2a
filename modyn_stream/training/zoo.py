"""Modyn's model zoo under Modyn's ids and `model.config` keys: the Wild-Time networks (YearbookNet,
SmallYearbookNet, FmowNet), torchvision's ResNets, Modyn's DLRM (training/dlrm.py) and Dummy.

Pretrained weights are never downloaded: `use_pretrained` reads torchvision's ImageNet weights from
the local torch hub cache (`TORCH_HOME`, default ~/.cache/torch), and says which file to put there
when it is missing.

>>> YearbookNet(num_input_channels=3, num_classes=2)(torch.zeros(4, 3, 32, 32)).shape
torch.Size([4, 2])
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modyn_stream.training.dlrm import DLRM
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.text import ArticleNet

_LOAD_PRETRAINED = contextvars.ContextVar("load_pretrained", default=True)


@contextlib.contextmanager
def architecture_only() -> Iterator[None]:
    """Build models without reading pretrained weights (their state comes from elsewhere, or only the shape
    matters, as when validating)."""
    token = _LOAD_PRETRAINED.set(False)
    try:
        yield
    finally:
        _LOAD_PRETRAINED.reset(token)


def loads_pretrained() -> bool:
    """False inside `architecture_only()`."""
    return _LOAD_PRETRAINED.get()


def weights_file(weights) -> Path:
    """Where torch hub keeps a torchvision weights enum's file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def pretrained_weights(model_id: str, config: dict):
    """The torchvision weights a zoo model with this config reads, or None."""
    if model_id == "FmowNet" and config.get("use_pretrained", True):
        from torchvision.models import DenseNet121_Weights

        return DenseNet121_Weights.DEFAULT
    if model_id.startswith("ResNet") and config.get("use_pretrained", False):
        from torchvision.models import resnet

        return getattr(resnet, f"{model_id}_Weights").DEFAULT
    return None


def _pretrained_state(model_id: str, use_pretrained: bool) -> dict | None:
    """The weights the model starts from (`pretrained_weights`), or None: none asked for, or architecture only."""
    weights = pretrained_weights(model_id, {"use_pretrained": use_pretrained})
    if weights is None or not _LOAD_PRETRAINED.get():
        return None
    path = weights_file(weights)
    if not path.is_file():
        raise TrainingError(
            f"model {model_id}: use_pretrained needs {path.name} in {path.parent} (download {weights.url} there, "
            "or set TORCH_HOME to a cache that has it), or set use_pretrained: false"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _conv_block(inputs: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2))


class YearbookNet(nn.Module):
    """Wild-Time's Yearbook network: four 32-channel conv blocks, a spatial mean, a linear classifier."""

    width, blocks = 32, 4

    def __init__(self, num_input_channels: int, num_classes: int):
        super().__init__()
        channels = [num_input_channels] + [self.width] * self.blocks
        self.enc = nn.Sequential(*(_conv_block(a, b) for a, b in itertools.pairwise(channels)))
        self.classifier = nn.Linear(self.width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.enc(x).mean(dim=(2, 3)))


class SmallYearbookNet(YearbookNet):
    """Three 16-channel conv blocks."""

    width, blocks = 16, 3


class FmowNet(nn.Module):
    """Wild-Time's FMoW network: DenseNet-121 features (ImageNet weights, as Modyn always uses), a linear head."""

    def __init__(self, num_classes: int, use_pretrained: bool = True):
        super().__init__()
        from torchvision.models import densenet121

        network = densenet121()
        if (state := _pretrained_state("FmowNet", use_pretrained)) is not None:
            network.load_state_dict(state)
        self.enc = network.features
        self.classifier = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.adaptive_avg_pool2d(F.relu(self.enc(x)), (1, 1))
        return self.classifier(torch.flatten(out, 1))


def _resnet(model_id: str, block: str, layers: list[int]):
    def build(
        num_classes: int = 1000,
        use_pretrained: bool = False,
        in_channels: int = 3,
        small_input: bool = False,
        zero_init_residual: bool = False,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> nn.Module:
        """torchvision's ResNet, as Modyn's; `in_channels` and `small_input` (a 3x3 stem without max-pool, for
        CIFAR-sized images) are modyn-stream's own."""
        from torchvision.models import resnet

        options = {"zero_init_residual": zero_init_residual, "groups": groups, "width_per_group": width_per_group}
        model = resnet.ResNet(getattr(resnet, block), layers, num_classes=1000 if use_pretrained else num_classes,
                              **options)  # fmt: skip
        if (state := _pretrained_state(model_id, use_pretrained)) is not None:
            model.load_state_dict(state)
        if num_classes != model.fc.out_features:
            model.fc = nn.Linear(model.fc.in_features, num_classes)
        if in_channels != 3 or small_input:
            model.conv1 = nn.Conv2d(in_channels, 64, *((3, 1, 1) if small_input else (7, 2, 3)), bias=False)
        if small_input:
            model.maxpool = nn.Identity()
        return model

    build.__name__ = model_id
    return build


class Dummy(nn.Module):
    """Modyn's integration-test model: one 2 -> 2 linear layer. Like Modyn's, it ignores its config."""

    def __init__(self, **ignored: object):
        super().__init__()
        self.output = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(x)

    @staticmethod
    def config_notes(config: dict) -> list[str]:
        return [f"{name}: Dummy does not read it (as in Modyn)" for name in sorted(config)]


ZOO = {
    "DLRM": DLRM,
    "YearbookNet": YearbookNet,
    "SmallYearbookNet": SmallYearbookNet,
    "FmowNet": FmowNet,
    "ResNet18": _resnet("ResNet18", "BasicBlock", [2, 2, 2, 2]),
    "ResNet50": _resnet("ResNet50", "Bottleneck", [3, 4, 6, 3]),
    "ResNet152": _resnet("ResNet152", "Bottleneck", [3, 8, 36, 3]),
    "ArticleNet": ArticleNet,
    "Dummy": Dummy,
}
