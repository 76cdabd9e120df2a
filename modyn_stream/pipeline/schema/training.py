"""`training`: how each trigger's model is trained (Modyn's field names)."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict, noted

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class ParamGroup(Strict):
    MODYN_REQUIRED: ClassVar = ("module",)
    module: str = Field("model", description="'model', or a dotted path into it as in Modyn: 'model.top_model'.")
    config: dict[str, Any] = Field(default_factory=dict)


class OptimizerConfig(Strict):
    MODYN_REQUIRED: ClassVar = (
        "name",
        "source",
        "param_groups",
    )
    name: Annotated[str, Field(min_length=1)] = "default"
    algorithm: Annotated[str, Field(min_length=1, description="Any torch.optim optimizer by name.")]
    source: Literal["PyTorch", "APEX"] = "PyTorch"
    param_groups: list[ParamGroup] = Field(default_factory=lambda: [ParamGroup()], min_length=1)

    @model_validator(mode="after")
    def _apex(self) -> OptimizerConfig:
        if self.source == "APEX" and self.algorithm != "FusedSGD":
            raise ValueError(f"APEX optimizer {self.algorithm!r} has no torch equivalent here; APEX FusedSGD has")
        return self

    def notes(self) -> list[str]:
        if self.source == "APEX":
            return ["source: APEX FusedSGD runs as torch.optim.SGD (fused=True on CUDA): the same update rule"]
        return []


class OptimizationCriterion(Strict):
    name: Annotated[str, Field(min_length=1, description="Any torch.nn loss by name, e.g. CrossEntropyLoss.")]
    config: dict[str, Any] = Field(default_factory=dict)


class LrScheduler(Strict):
    MODYN_REQUIRED: ClassVar = (
        "source",
        "step_every",
        "optimizers",
    )
    name: Annotated[str, Field(min_length=1, description="Any torch.optim.lr_scheduler by name, or DLRMScheduler.")]
    source: Literal["PyTorch", "Custom"] = "PyTorch"
    step_every: Literal["epoch", "batch"] = "epoch"
    optimizers: list[str] = Field(default_factory=lambda: ["default"], min_length=1)
    config: dict[str, Any] = Field(
        default_factory=dict, description="MODYN_NUM_BATCHES / MODYN_NUM_EPOCHS are replaced as in Modyn."
    )

    @model_validator(mode="after")
    def _source(self) -> LrScheduler:
        if self.source == "PyTorch" and len(self.optimizers) != 1:
            raise ValueError("a PyTorch lr_scheduler drives exactly one optimizer (Modyn's rule); use source: Custom")
        if self.source == "Custom" and self.name not in CUSTOM_SCHEDULERS:
            raise ValueError(f"unknown Custom lr_scheduler {self.name!r}; known: {', '.join(CUSTOM_SCHEDULERS)}")
        return self


CUSTOM_SCHEDULERS = ("DLRMScheduler",)


class Checkpointing(Strict):
    MODYN_REQUIRED: ClassVar = ("activated",)
    activated: bool = False
    interval: Annotated[int, Field(ge=1)] | None = None
    path: str | None = None


class TrainingSection(Strict):
    MODYN_REQUIRED: ClassVar = (
        "gpus",
        "dataloader_workers",
        "shuffle",
        "use_previous_model",
        "initial_model",
        "checkpointing",
    )
    gpus: Annotated[int, Field(ge=1, le=1)] = noted(1, "training runs on one device, `device`; gpus is not read")
    device: str = "cpu"
    amp: bool = False
    grad_scaler_config: dict[str, Any] | None = Field(None, description="torch.amp.GradScaler arguments (with amp).")
    dataloader_workers: Annotated[int, Field(ge=0)] = noted(
        1, "payloads are fetched and decoded by one loader thread beside training; dataloader_workers is not read"
    )
    num_prefetched_partitions: Annotated[int, Field(ge=0)] = noted(
        1, "the loader reads ahead from Kafka while training runs; prefetch settings are not read"
    )
    parallel_prefetch_requests: Annotated[int, Field(ge=1)] = noted(
        1, "the loader reads ahead from Kafka while training runs; prefetch settings are not read"
    )
    enable_accurate_gpu_measurements: bool = noted(
        False, "no per-operation GPU timings are taken; the trainer reports wall-clock training time"
    )
    epochs_per_trigger: Annotated[int, Field(ge=1)] = 1
    num_samples_to_pass: list[Annotated[int, Field(ge=1)]] | None = None
    batch_size: Annotated[int, Field(ge=1)]
    drop_last_batch: bool = True
    shuffle: bool = True
    seed: int | None = None
    use_previous_model: bool = True
    initial_model: Literal["random", "pretrained"] = "random"
    initial_model_id: str | int | None = Field(
        None, description="A stored model version, 'PIPELINE_ID/TRIGGER' (Modyn's numeric ids name its own store)."
    )
    initial_model_path: str | None = Field(None, description="A model file to start from instead.")
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
        if self.initial_model == "pretrained":
            if (self.initial_model_id is None) == (self.initial_model_path is None):
                raise ValueError(
                    "initial_model 'pretrained' needs one of initial_model_id (a stored model version) "
                    "or initial_model_path (a model file)"
                )
            if isinstance(self.initial_model_id, int):
                raise ValueError(
                    f"initial_model_id {self.initial_model_id} is a Modyn model-storage id, which names nothing here: "
                    "give a stored version as 'PIPELINE_ID/TRIGGER' (modyn-stream inspect models) or initial_model_path"
                )
            if not self.use_previous_model:
                raise ValueError("initial_model 'pretrained' needs use_previous_model: the next trigger would drop it")
        if self.checkpointing.activated and self.checkpointing.interval is None:
            raise ValueError("checkpointing.activated needs checkpointing.interval")
        return self

    def notes(self) -> list[str]:
        if self.grad_scaler_config is not None and not self.amp:
            return ["grad_scaler_config: not used, as amp is off (as in Modyn)"]
        return []
