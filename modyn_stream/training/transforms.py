"""Transformations of decoded tensors by name, as torchvision's: batches (N, C, H, W) in, batches out.

`{name: Normalize, mean: [...], std: [...]}` (per channel, or one value), `{name: Resize, size}` (an
int sets the shorter side), `{name: CenterCrop, size}`, `{name: RandomResizedCrop, size, scale,
ratio}`, `{name: RandomHorizontalFlip, p}`, `ToTensor` (nothing to do: decoders give float tensors,
images in [0, 1] channels first), `{name: Flatten}`, `{name: Scale, factor}`, or a `module:function`
the operator trusts. Modyn's `transformations` strings (`transforms.Normalize(...)`) are read into
these (pipeline/snippets.py).

Random ones draw from the generator they are given, per sample, in order: the same data and seed give
the same augmentation. (A training set is decoded once, so its later epochs reuse the first's draws.)

>>> flip = build_transform([{"name": "RandomHorizontalFlip", "p": 1.0}], NOBODY, torch.Generator())
>>> flip(torch.tensor([[[[1.0, 2.0]]]])).tolist()
[[[[2.0, 1.0]]]]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from modyn_stream.pipeline.trust import NOBODY, CodeTrust
from modyn_stream.training.exceptions import TrainingError

Transform = Callable[[torch.Tensor], torch.Tensor]
NAMES = ("ToTensor", "Normalize", "Resize", "CenterCrop", "RandomResizedCrop", "RandomHorizontalFlip", "Flatten",
         "Scale")  # fmt: skip


def build_transform(specs: Sequence, trust: CodeTrust = NOBODY, generator: torch.Generator | None = None):
    """All of `specs` in order, as one function; None when there are none."""
    steps = [_step(spec, trust, generator or torch.Generator()) for spec in specs]
    if not steps:
        return None

    def transform(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step(x)
        return x

    return transform


def _step(spec: str | dict, trust: CodeTrust, generator: torch.Generator) -> Transform:
    config = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = config.pop("name", None)
    if name == "Normalize":
        mean, std = torch.tensor(config["mean"]), torch.tensor(config["std"])
        return lambda x: (x - _per_channel(mean, x)) / _per_channel(std, x)
    if name == "ToTensor":
        return lambda x: x
    if name == "Resize":
        return lambda x: resize(x, config["size"])
    if name == "CenterCrop":
        return lambda x: center_crop(x, config["size"])
    if name == "RandomResizedCrop":
        options = {"scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3), **config}
        return lambda x: torch.cat([random_resized_crop(s[None], generator=generator, **options) for s in x])
    if name == "RandomHorizontalFlip":
        p = float(config.get("p", 0.5))
        return lambda x: torch.where((torch.rand(len(x), generator=generator) < p).view(-1, 1, 1, 1), x.flip(-1), x)
    if name == "Flatten":
        return lambda x: x.reshape(len(x), -1)
    if name == "Scale":
        return lambda x: x * float(config["factor"])
    if isinstance(name, str) and ":" in name:
        return trust.load(name, "data.transformations")
    raise TrainingError(f"unknown transformation {spec!r}; known: {', '.join(NAMES)} or module:function")


def _per_channel(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.reshape(1, -1, *([1] * (x.dim() - 2))) if values.numel() > 1 and x.dim() > 2 else values


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (tuple(size) * 2)[:2]


def resize(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """torchvision's Resize (bilinear, antialiased): an int sets the shorter side, keeping the aspect ratio."""
    height, width = x.shape[-2:]
    if isinstance(size, int):
        scale = size / min(height, width)
        target = (size, max(1, round(width * scale))) if height <= width else (max(1, round(height * scale)), size)
    else:
        target = _pair(size)
    return F.interpolate(x, size=target, mode="bilinear", antialias=True, align_corners=False)


def center_crop(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    height, width = _pair(size)
    top, left = max(0, (x.shape[-2] - height) // 2), max(0, (x.shape[-1] - width) // 2)
    return x[..., top : top + height, left : left + width]


def random_resized_crop(
    x: torch.Tensor, size, scale: Sequence[float], ratio: Sequence[float], generator: torch.Generator
) -> torch.Tensor:
    """torchvision's RandomResizedCrop of one image (1, C, H, W): a crop of random area (`scale` of the image)
    and aspect ratio (`ratio`, drawn log-uniformly), resized to `size`; after 10 misses, the central crop."""
    height, width = x.shape[-2:]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * (scale[0] + (scale[1] - scale[0]) * float(torch.rand(1, generator=generator)))
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * float(torch.rand(1, generator=generator)))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return resize(x[..., top : top + h, left : left + w], _pair(size))
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return resize(center_crop(x, (h, w)), _pair(size))
