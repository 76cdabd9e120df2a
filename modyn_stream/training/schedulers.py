"""Learning-rate schedulers by Modyn's names: torch's by name, and Modyn's custom DLRM schedule.

`MODYN_NUM_BATCHES` and `MODYN_NUM_EPOCHS`, as string values in a scheduler's config, become the
number of batches (all epochs together) and of epochs this trigger trains for, as in Modyn.

The DLRM schedule (NVIDIA's DLRM recipe, Modyn's `DLRMScheduler`): each parameter group's
learning rate is `base_lrs[optimizer][group]` times a factor of the step `s`. The factor warms up
linearly to 1 over `warmup_steps` (starting at 1 - 2**-warmup_factor), stays 1, then from
`decay_start_step` decays polynomially (`decay_power`) over `decay_steps`, never below
`end_lr_factor`, which it keeps after the decay.

>>> schedule = DLRMSchedule(warmup_steps=2, warmup_factor=0, decay_start_step=4, decay_steps=2,
...                         decay_power=1, end_lr_factor=0.25)
>>> [schedule.factor(s) for s in range(8)]
[0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.25, 0.25]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modyn_stream.pipeline.schema.training import LrScheduler
from modyn_stream.training.exceptions import TrainingError


def substituted(config: dict[str, Any], batches: int, epochs: int) -> dict[str, Any]:
    """`config` with Modyn's placeholders replaced (at any depth, as whole string values)."""
    values = {"MODYN_NUM_BATCHES": batches, "MODYN_NUM_EPOCHS": epochs}

    def replace(value: Any) -> Any:
        if isinstance(value, str):
            return values.get(value, value)
        if isinstance(value, dict):
            return {k: replace(v) for k, v in value.items()}
        if isinstance(value, list):
            return [replace(v) for v in value]
        return value

    return replace(config)


@dataclass(frozen=True)
class DLRMSchedule:
    warmup_steps: int
    warmup_factor: float
    decay_start_step: int
    decay_steps: int
    decay_power: float
    end_lr_factor: float

    def __post_init__(self) -> None:
        if self.decay_start_step < self.warmup_steps:
            raise ValueError("the warmup must end before the decay starts (decay_start_step >= warmup_steps)")
        if self.warmup_steps < 0 or self.decay_steps <= 0:
            raise ValueError("warmup_steps must be >= 0 and decay_steps > 0")

    def factor(self, step: int) -> float:
        decay_end = self.decay_start_step + self.decay_steps
        if step <= self.warmup_steps:
            if self.warmup_steps == 0:
                return 1.0
            return 1 - (self.warmup_steps - step) / (self.warmup_steps * 2**self.warmup_factor)
        if step <= self.decay_start_step:
            return 1.0
        if step <= decay_end:
            return max(((decay_end - step) / self.decay_steps) ** self.decay_power, self.end_lr_factor)
        return self.end_lr_factor


class DLRMScheduler:
    """Sets every group's learning rate from its base rate and the DLRM factor; checkpointable like torch's."""

    def __init__(self, optimizers: list[torch.optim.Optimizer], base_lrs: list[list[float]], **schedule: Any) -> None:
        if len(base_lrs) != len(optimizers) or any(
            len(rates) != len(o.param_groups) for rates, o in zip(base_lrs, optimizers, strict=False)
        ):
            raise ValueError("base_lrs needs one list per optimizer with one rate per parameter group")
        self.schedule = DLRMSchedule(**schedule)
        self.optimizers, self.base_lrs, self.step_count = optimizers, base_lrs, 0

    def step(self) -> None:
        self.step_count += 1
        factor = self.schedule.factor(self.step_count)
        for optimizer, rates in zip(self.optimizers, self.base_lrs, strict=True):
            for group, rate in zip(optimizer.param_groups, rates, strict=True):
                group["lr"] = rate * factor

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step_count"]


def build_scheduler(config: LrScheduler | None, optimizers: dict, steps_per_epoch: int, epochs: int) -> list:
    """The schedulers of `config` (one per optimizer for torch's, one over all for a custom one)."""
    if config is None:
        return []
    steps = steps_per_epoch * epochs
    options = substituted(config.config, steps, epochs)
    try:
        if config.source == "Custom":  # the only custom one: DLRMScheduler (checked by the schema)
            return [DLRMScheduler([optimizers[name] for name in config.optimizers], **options)]
        if config.name == "OneCycleLR":
            options.setdefault("total_steps", max(1, steps if config.step_every == "batch" else epochs))
        kind = getattr(torch.optim.lr_scheduler, config.name, None)
        if not isinstance(kind, type) or not issubclass(kind, torch.optim.lr_scheduler.LRScheduler):
            raise TrainingError(f"lr_scheduler {config.name!r} is not a torch.optim.lr_scheduler scheduler")
        return [kind(optimizers[name], **options) for name in config.optimizers]
    except (TypeError, ValueError, KeyError) as exc:
        raise TrainingError(f"lr_scheduler {config.name}: {exc}") from None
