"""The pipeline YAML as typed models, with Modyn's section and field names.

Sections: `pipeline`, `model`, `model_storage`, `training`, `data`, `trigger`,
`selection_strategy`, `evaluation`. Unknown fields are errors (a typo must not be ignored).
Configs never execute code: Modyn's `bytes_parser_function` (Python source in YAML) is
rejected; decoders are named, or `module:function` references, imported only where the operator
trusts them (never because the file says so: see `trust.py`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modyn_stream.pipeline.trust import HOW_TO_TRUST
from modyn_stream.timeutil import parse_duration, parse_interval, parse_time

_DATASET_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- pipeline, model, model_storage --------------------------------------------------------------


def safe_path_component(value: str) -> str:
    """A name that is used as one directory name (run directory, artifact folders): never a path.

    Spaces and punctuation are fine (Modyn's names have them); separators, '.', '..' and control
    characters are not, so no name can make a run write or delete outside its root.
    """
    if len(value) > 128 or value in {".", ".."} or any(c in "/\\" or not c.isprintable() for c in value):
        raise ValueError(
            f"{value!r} is not a safe name: it names a directory, so use at most 128 printable characters "
            "without '/' or '\\', and not '.' or '..'"
        )
    return value


class PipelineInfo(Strict):
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    version: str | None = None

    _name = field_validator("name")(safe_path_component)


def _self_trust(value: object) -> None:
    """A pipeline file cannot trust its own code: the operator does (see pipeline/trust.py)."""
    if value is not None:
        raise ValueError(f"a pipeline file cannot trust its own code: {HOW_TO_TRUST}")


class ModelSection(Strict):
    id: Annotated[str, Field(min_length=1, description="A model id, or module:Class (where the operator trusts it).")]
    config: dict[str, Any] = Field(default_factory=dict)
    trusted: Any = Field(None, description="Refused: trust comes from the operator, not the file.")

    _trusted = field_validator("trusted")(_self_trust)


class FullModelStrategy(Strict):
    name: Literal["PyTorchFullModel", "BinaryFullModel"] = "PyTorchFullModel"
    zip: bool = False
    zip_algorithm: Literal["ZIP_DEFLATED", "ZIP_LZMA", "ZIP_BZIP2"] = "ZIP_DEFLATED"


class IncrementalModelStrategy(Strict):
    name: Literal["WeightsDifference"] = "WeightsDifference"
    operator: Literal["sub", "xor"] = "sub"
    zip: bool = False


class ModelStorageSection(Strict):
    full_model_strategy: FullModelStrategy = Field(default_factory=FullModelStrategy)
    incremental_model_strategy: IncrementalModelStrategy | None = None
    full_model_interval: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _interval_needs_incremental(self) -> ModelStorageSection:
        if self.full_model_interval is not None and self.incremental_model_strategy is None:
            raise ValueError("full_model_interval only applies with an incremental_model_strategy")
        return self


# -- training ------------------------------------------------------------------------------------


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


# -- data ----------------------------------------------------------------------------------------


class DataSection(Strict):
    dataset_id: str
    decoder: str = Field("raw", description="A named payload decoder, or module:function when trusted.")
    decoder_config: dict[str, Any] = Field(default_factory=dict)
    transformations: list[str | dict[str, Any]] = Field(default_factory=list)
    label_transformer: str | None = None
    trusted: Any = Field(None, description="Refused: trust comes from the operator, not the file.")
    bytes_parser_function: str | None = Field(None, description="Modyn's Python-in-YAML; never executed here.")

    _trusted = field_validator("trusted")(_self_trust)

    @field_validator("dataset_id")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if not _DATASET_ID.match(value):
            raise ValueError("dataset_id may only contain letters, digits, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _no_code(self) -> DataSection:
        if self.bytes_parser_function is not None:
            raise ValueError(
                "bytes_parser_function holds Python source, which modyn-stream never executes; "
                "use a named decoder (e.g. decoder: raw) or decoder: module:function where the operator trusts it"
            )
        return self

    def code_references(self) -> list[tuple[str, str]]:
        """(field, module:function) of every reference to code in this section."""
        named = [("data.decoder", self.decoder), ("data.label_transformer", self.label_transformer or "")]
        named += [("data.transformations", t if isinstance(t, str) else str(t.get("name", "")))
                  for t in self.transformations]  # fmt: skip
        return [(field, reference) for field, reference in named if ":" in reference]


# -- triggers ------------------------------------------------------------------------------------


class _Trigger(Strict):
    fire_on_end_of_stream: bool = Field(
        False, description="At the end of a replay, fire once more for samples not yet in any trigger."
    )


class DataAmountTrigger(_Trigger):
    id: Literal["DataAmountTrigger"]
    num_samples: Annotated[int, Field(ge=1)]


class TimeTrigger(_Trigger):
    id: Literal["TimeTrigger"]
    every: str
    start_timestamp: int | str | None = None

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("every must be positive")
        return value

    @field_validator("start_timestamp")
    @classmethod
    def _start(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_time(value)
        return value

    @property
    def every_ms(self) -> int:
        return parse_duration(self.every)

    @property
    def start_ms(self) -> int | None:
        return None if self.start_timestamp is None else parse_time(self.start_timestamp)


class MajorityVote(Strict):
    id: Literal["MajorityVote"]


class AtLeastN(Strict):
    id: Literal["AtLeastN"]
    n: Annotated[int, Field(ge=1)]


class EnsembleTrigger(_Trigger):
    id: Literal["EnsembleTrigger"]
    subtriggers: dict[str, Annotated[DataAmountTrigger | TimeTrigger, Field(discriminator="id")]] = Field(min_length=1)
    ensemble_strategy: Annotated[MajorityVote | AtLeastN, Field(discriminator="id")]

    @model_validator(mode="after")
    def _n_fits(self) -> EnsembleTrigger:
        if isinstance(self.ensemble_strategy, AtLeastN) and self.ensemble_strategy.n > len(self.subtriggers):
            raise ValueError(f"AtLeastN n={self.ensemble_strategy.n} exceeds the {len(self.subtriggers)} subtriggers")
        return self


TriggerConfig = Annotated[DataAmountTrigger | TimeTrigger | EnsembleTrigger, Field(discriminator="id")]


# -- selection -----------------------------------------------------------------------------------


class _Selection(Strict):
    tail_triggers: Annotated[int, Field(ge=0)] | None = Field(
        None, description="None: all data so far; 0: new data only; k: the last k triggers' data too."
    )
    limit: int = Field(-1, description="Most samples in a training set; -1: no limit.")

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("limit must be -1 (no limit) or positive")
        return value


class NewDataStrategy(_Selection):
    name: Literal["NewDataStrategy"]
    limit_reset: Literal["lastX", "sampleUAR"] = "lastX"


class FreshnessSamplingStrategy(_Selection):
    name: Literal["FreshnessSamplingStrategy"]
    unused_data_ratio: Annotated[int, Field(ge=1, le=99, description="Percent of the set from unused data.")]


class PresamplingConfig(Strict):
    strategy: Literal["Random", "RandomNoReplacement", "LabelBalanced", "TriggerBalanced", "No"] = "No"
    ratio: Annotated[int, Field(ge=1, description="Of ratio_max: 50 of 100 is half, 125 of 1000 an eighth.")] = 100
    ratio_max: Annotated[int, Field(ge=1)] = 100

    @model_validator(mode="after")
    def _ratio(self) -> PresamplingConfig:
        if self.ratio > self.ratio_max:
            raise ValueError(f"ratio {self.ratio} exceeds ratio_max {self.ratio_max}")
        return self


class DownsamplingConfig(Strict):
    strategy: Literal[
        "Loss", "GradNorm", "Uncertainty", "KcenterGreedy", "GradMatch", "Craig", "Submodular", "RHOLoss", "RS2", "No"
    ] = "No"
    ratio: Annotated[int, Field(ge=1)] = 100
    ratio_max: Annotated[int, Field(ge=1)] = 100
    sample_then_batch: bool = False
    config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_applied_yet(self) -> DownsamplingConfig:
        if self.strategy != "No":  # accepted and not applied would train on all data while saying otherwise
            raise ValueError(
                f"{self.strategy} downsampling is not applied by this version (it would train on all the data): "
                "use strategy: No"
            )
        return self


class CoresetStrategy(_Selection):
    name: Literal["CoresetStrategy"]
    presampling_config: PresamplingConfig = Field(default_factory=PresamplingConfig)
    downsampling_config: DownsamplingConfig = Field(default_factory=DownsamplingConfig)


SelectionConfig = Annotated[NewDataStrategy | FreshnessSamplingStrategy | CoresetStrategy, Field(discriminator="name")]


# -- evaluation ----------------------------------------------------------------------------------


def _time(value: int | str) -> int | str:
    parse_time(value)
    return value


def _positive_duration(value: str) -> str:
    if parse_duration(value) <= 0:
        raise ValueError("must be a positive duration")
    return value


class SlicingEvalStrategy(Strict):
    type: Literal["SlicingEvalStrategy"]
    eval_every: str
    eval_start_from: int | str
    eval_end_at: int | str

    _every = field_validator("eval_every")(_positive_duration)
    _times = field_validator("eval_start_from", "eval_end_at")(_time)

    @model_validator(mode="after")
    def _ordered(self) -> SlicingEvalStrategy:
        if parse_time(self.eval_end_at) <= parse_time(self.eval_start_from):
            raise ValueError("eval_end_at must come after eval_start_from")
        return self


class BetweenTwoTriggersEvalStrategy(Strict):
    type: Literal["BetweenTwoTriggersEvalStrategy"]


class PeriodicEvalStrategy(Strict):
    type: Literal["PeriodicEvalStrategy"]
    every: str
    interval: str = Field(description="e.g. '[-1d; +1d]'")
    start_timestamp: int | str
    end_timestamp: int | str

    _every = field_validator("every")(_positive_duration)
    _times = field_validator("start_timestamp", "end_timestamp")(_time)

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        parse_interval(value)
        return value


class StaticEvalStrategy(Strict):
    type: Literal["StaticEvalStrategy"]
    intervals: list[tuple[int | str, int | str]] = Field(min_length=1)

    @field_validator("intervals")
    @classmethod
    def _intervals(cls, value: list) -> list:
        for start, end in value:
            if parse_time(end) <= parse_time(start):
                raise ValueError(f"interval ({start}, {end}) ends before it starts")
        return value


class Metric(Strict):
    name: Literal["Accuracy", "F1Score", "RocAuc"]
    topn: Annotated[int, Field(ge=1)] = 1
    average: Literal["macro", "micro", "weighted", "binary"] = "macro"
    num_classes: Annotated[int, Field(ge=2)] | None = None


class EvalDataset(Strict):
    dataset_id: str
    batch_size: Annotated[int, Field(ge=1)] = 256
    metrics: list[Metric] = Field(min_length=1)


class EvalHandler(Strict):
    name: str = "default"
    execution_time: Literal["after_training", "after_pipeline"] = "after_training"
    models: Literal["matrix", "active", "training"] = "matrix"
    strategy: Annotated[
        SlicingEvalStrategy | BetweenTwoTriggersEvalStrategy | PeriodicEvalStrategy | StaticEvalStrategy,
        Field(discriminator="type"),
    ]
    datasets: list[str] = Field(min_length=1)


class EvaluationSection(Strict):
    device: str = "cpu"
    handlers: list[EvalHandler] = Field(min_length=1)
    datasets: list[EvalDataset] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_datasets(self) -> EvaluationSection:
        defined = {d.dataset_id for d in self.datasets}
        for handler in self.handlers:
            unknown = [d for d in handler.datasets if d not in defined]
            if unknown:
                raise ValueError(
                    f"handler {handler.name!r} uses undefined dataset(s) {unknown}; defined: {sorted(defined)}"
                )
        return self


# -- the whole pipeline --------------------------------------------------------------------------


class ReplaySection(Strict):
    """modyn-stream's own section: what `modyn-stream run` replays into `data.dataset_id`."""

    generator: Literal["digits-drift", "tabular-drift"] | None = Field(None, description="A built-in stream.")
    path: str | None = Field(None, description="An .npz file with x, y and t (event time, epoch ms) arrays.")
    samples: Annotated[int, Field(ge=1)] = 6000
    seed: Annotated[int, Field(ge=0)] = 0
    partitions: Annotated[int, Field(ge=1)] = 4

    @model_validator(mode="after")
    def _one_source(self) -> ReplaySection:
        if (self.generator is None) == (self.path is None):
            raise ValueError("give exactly one of generator (a built-in stream) or path (an .npz file)")
        return self


class PipelineConfig(Strict):
    pipeline: PipelineInfo
    model: ModelSection
    model_storage: ModelStorageSection = Field(default_factory=ModelStorageSection)
    training: TrainingSection
    data: DataSection
    trigger: TriggerConfig
    selection_strategy: SelectionConfig
    evaluation: EvaluationSection | None = None
    replay: ReplaySection | None = None
