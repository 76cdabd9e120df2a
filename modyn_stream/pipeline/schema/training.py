"""`training`: how each trigger's model is trained (Modyn's field names)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class ParamGroup(Strict):
    module: str = "model"
    config: dict[str, Any] = Field(default_factory=dict)


class OptimizerConfig(Strict):
    name: Annotated[str, Field(min_length=1)] = "default"
    algorithm: Literal["SGD", "Adam", "AdamW"]
    source: Literal["PyTorch"] = "PyTorch"
    param_groups: list[ParamGroup] = Field(default_factory=lambda: [ParamGroup()])


class OptimizationCriterion(Strict):
    name: Literal["CrossEntropyLoss", "BCEWithLogitsLoss", "BCELoss", "MSELoss"]
    config: dict[str, Any] = Field(default_factory=dict)


class LrScheduler(Strict):
    name: Literal["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR"]
    source: Literal["PyTorch"] = "PyTorch"
    step_every: Literal["epoch", "batch"] = "epoch"
    optimizers: list[str] = Field(default_factory=lambda: ["default"])
    config: dict[str, Any] = Field(default_factory=dict)


class Checkpointing(Strict):
    activated: bool = False
    interval: Annotated[int, Field(ge=1)] | None = None
    path: str | None = None


class TrainingSection(Strict):
    device: str = "cpu"
    amp: bool = False
    dataloader_workers: Annotated[int, Field(ge=0)] = 0
    epochs_per_trigger: Annotated[int, Field(ge=1)] = 1
    num_samples_to_pass: list[Annotated[int, Field(ge=1)]] | None = None
    batch_size: Annotated[int, Field(ge=1)]
    drop_last_batch: bool = False
    shuffle: bool = True
    seed: int | None = None
    use_previous_model: bool = True
    initial_model: Literal["random", "pretrained"] = "random"
    initial_model_path: str | None = None
    optimizers: list[OptimizerConfig] = Field(min_length=1)
    optimization_criterion: OptimizationCriterion
    lr_scheduler: LrScheduler | None = None
    checkpointing: Checkpointing = Field(default_factory=Checkpointing)
    record_loss_every: Annotated[int, Field(ge=0)] = 0

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainingSection:
        names = [o.name for o in self.optimizers]
        if len(set(names)) != len(names):
            raise ValueError(f"optimizer names must be unique, got {names}")
        if self.lr_scheduler is not None:
            unknown = [n for n in self.lr_scheduler.optimizers if n not in names]
            if unknown:
                raise ValueError(f"lr_scheduler refers to unknown optimizer(s) {unknown}; defined: {names}")
        if self.initial_model == "pretrained" and not self.initial_model_path:
            raise ValueError("initial_model 'pretrained' needs initial_model_path (a model file)")
        if self.checkpointing.activated and self.checkpointing.interval is None:
            raise ValueError("checkpointing.activated needs checkpointing.interval")
        return self
