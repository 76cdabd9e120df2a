"""`selection_strategy`: what each trigger trains on."""

from __future__ import annotations

import bisect
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict, noted


def _ratio_within(ratio: int, ratio_max: int) -> None:
    if ratio > ratio_max:
        raise ValueError(f"ratio {ratio} exceeds ratio_max {ratio_max}")


class _Selection(Strict):
    MODYN_REQUIRED: ClassVar = (
        "maximum_keys_in_memory",
        "tail_triggers",
    )
    tail_triggers: Annotated[int, Field(ge=0)] | None = Field(
        None, description="None: all data so far; 0: new data only; k: the last k triggers' data too."
    )
    limit: int = Field(-1, description="Most samples in a training set; -1: no limit.")
    uses_weights: bool = Field(False, description="Train with the selector's per-sample weights (weighted loss).")
    maximum_keys_in_memory: Annotated[int, Field(ge=1)] = noted(
        1000, "each training set is selected by one ClickHouse query and streamed to a manifest; not read"
    )
    storage_backend: Literal["database", "local"] = noted(
        "database", "every strategy selects in ClickHouse; storage_backend is not read"
    )
    processor_type: str | None = noted(None, "no metadata processor runs here; processor_type is not read")

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: int) -> int:
        if value == 0 or value < -1:
            raise ValueError("limit must be -1 (no limit) or positive")
        return value

    def downsampling(self, trigger_index: int | None = None) -> DownsamplingConfig | None:
        """The in-trainer downsampling of this strategy (at `trigger_index`, if given), or None."""
        return None

    def downsamplers(self) -> list[tuple[str, DownsamplingConfig]]:
        """Every in-trainer downsampler that may run, with its path in the pipeline file."""
        return []


class NewDataStrategy(_Selection):
    name: Literal["NewDataStrategy"]
    limit_reset: Literal["lastX", "sampleUAR"] = "lastX"


class FreshnessSamplingStrategy(_Selection):
    name: Literal["FreshnessSamplingStrategy"]
    unused_data_ratio: Annotated[int, Field(ge=1, le=99, description="Percent of the set from unused data.")]


class PresamplingConfig(Strict):
    MODYN_REQUIRED: ClassVar = ("strategy", "ratio")
    strategy: Literal["Random", "RandomNoReplacement", "LabelBalanced", "TriggerBalanced", "No"] = "No"
    ratio: Annotated[int, Field(ge=1, description="Of ratio_max: 50 of 100 is half, 125 of 1000 an eighth.")] = 100
    ratio_max: Annotated[int, Field(ge=1)] = 100
    force_column_balancing: bool = Field(False, description="Balanced: every group as many as the smallest has.")
    force_required_target_size: bool = Field(False, description="Balanced: top up to exactly the target size.")

    def notes(self) -> list[str]:
        if self.strategy not in ("LabelBalanced", "TriggerBalanced"):
            given = [f for f in ("force_column_balancing", "force_required_target_size") if getattr(self, f)]
            return [f"{f}: only balanced presampling reads it (as in Modyn); not read" for f in given]
        return []

    @model_validator(mode="after")
    def _ratio(self) -> PresamplingConfig:
        _ratio_within(self.ratio, self.ratio_max)
        return self


GREEDY = Literal["NaiveGreedy", "LazyGreedy", "StochasticGreedy", "ApproximateLazyGreedy"]
APPLIED_DOWNSAMPLING = ("Loss", "GradNorm", "Uncertainty", "KcenterGreedy", "GradMatch", "Craig", "Submodular", "RS2")
GRADIENT_STRATEGIES = ("GradMatch", "Craig", "Submodular")  # on last-layer gradients, `full_grad_approximation`
OWNERS = {  # a strategy's own fields (as in Modyn): refused with any other strategy
    "score_metric": ("Uncertainty",),
    "with_replacement": ("RS2",),
    "balance": ("Uncertainty", "KcenterGreedy", *GRADIENT_STRATEGIES),
    "full_grad_approximation": GRADIENT_STRATEGIES,
    "selection_batch": ("Craig", "Submodular"),
    "greedy": ("Craig",),
    "submodular_function": ("Submodular",),
    "submodular_optimizer": ("Submodular",),
}
DEFAULTS = {  # Modyn's defaults of those fields, per strategy (RS2 only samples then batches)
    "RS2": {"sample_then_batch": True},
    "GradMatch": {"full_grad_approximation": "LastLayer"},
    "Craig": {"full_grad_approximation": "LastLayer", "selection_batch": 64, "greedy": "NaiveGreedy"},
    "Submodular": {
        "full_grad_approximation": "LastLayer",
        "selection_batch": 64,
        "submodular_optimizer": "NaiveGreedy",
    },
}
REQUIRED = {"Uncertainty": "score_metric", "RS2": "with_replacement", "Submodular": "submodular_function"}


class DownsamplingConfig(Strict):
    """In-trainer downsampling (training/downsampling.py, training/coresets.py): a `ratio` of `ratio_max` of each
    batch is kept, or (sample then batch) of the whole training set each `period` epochs."""

    strategy: Literal[
        "Loss", "GradNorm", "Uncertainty", "KcenterGreedy", "GradMatch", "Craig", "Submodular", "RHOLoss", "RS2", "No"
    ] = "No"
    ratio: Annotated[int, Field(ge=1)] = 100
    ratio_max: Annotated[int, Field(ge=1)] = 100
    sample_then_batch: bool = False
    period: Annotated[int, Field(ge=0)] = 1
    score_metric: Literal["LeastConfidence", "Entropy", "Margin"] | None = Field(None, description="Uncertainty's.")
    balance: bool = False
    with_replacement: bool | None = Field(
        None,
        description="RS2's: a new random subset each epoch (true), or a different part of one shuffle each "
        "epoch until all were trained on (false).",
    )
    full_grad_approximation: Literal["LastLayer", "LastLayerWithEmbedding"] | None = Field(
        None,
        description="GradMatch's, Craig's, Submodular's: the gradient at the last layer's bias, or its weights too.",
    )
    selection_batch: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Craig's, Submodular's: similarity rows summed at a time (memory, never the picks)."
    )
    greedy: GREEDY | None = Field(None, description="Craig's greedy optimiser.")
    submodular_function: Literal["FacilityLocation", "GraphCut", "LogDeterminant"] | None = None
    submodular_optimizer: GREEDY | None = Field(None, description="Submodular's greedy optimiser.")

    def notes(self) -> list[str]:
        if self.strategy == "No":
            return [
                f"{name}: not read with downsampling strategy No"
                for name in sorted(self.model_fields_set - {"strategy"})
            ]
        if "period" in self.model_fields_set and not self.sample_then_batch:
            return ["period: only sample-then-batch reads it (as in Modyn)"]
        return []

    @model_validator(mode="before")
    @classmethod
    def _defaults_and_not_applied(cls, data: Any) -> Any:
        strategy = data.get("strategy", "No") if isinstance(data, dict) else "No"
        if strategy not in ("No", *APPLIED_DOWNSAMPLING):  # accepted and not applied would train on all the data
            raise ValueError(
                f"{strategy} downsampling is not applied by this version (it would train on all the data); "
                f"applied: {', '.join(APPLIED_DOWNSAMPLING)}"
            )
        return {**DEFAULTS.get(strategy, {}), **data} if isinstance(data, dict) else data

    def kept(self, batch_size: int) -> int:
        """How many samples of a batch are kept (at least one)."""
        return max(self.ratio * batch_size // self.ratio_max, 1)

    @model_validator(mode="after")
    def _consistent(self) -> DownsamplingConfig:
        _ratio_within(self.ratio, self.ratio_max)
        if self.strategy == "No":
            return self
        for name, owners in OWNERS.items():
            if getattr(self, name) not in (None, type(self).model_fields[name].default) and self.strategy not in owners:
                raise ValueError(f"{name} is not a field of {self.strategy} downsampling (it is "
                                 f"{', '.join(owners)}'s, as in Modyn)")  # fmt: skip
        if self.strategy in REQUIRED and getattr(self, REQUIRED[self.strategy]) is None:
            raise ValueError(f"{self.strategy} downsampling needs {REQUIRED[self.strategy]}")
        if self.strategy == "RS2":
            if not self.sample_then_batch or self.period != 1:
                raise ValueError("RS2 samples the whole training set every epoch: it takes sample_then_batch: true "
                                 "and period: 1 (its defaults, as in Modyn)")  # fmt: skip
            return self
        if self.balance and not self.sample_then_batch:
            raise ValueError("balance (a selection per class of the whole training set) needs sample_then_batch: "
                             "true")  # fmt: skip
        return self


class MultiDownsamplingConfig(Strict):
    """Modyn's downsamplers switched at triggers: the i-th threshold is the first trigger of the (i+1)-th
    downsampler ([A, B, C] with [5, 10]: A for triggers 0-4, B for 5-9, C from 10 on)."""

    downsampling_list: Annotated[list[DownsamplingConfig], Field(min_length=1)]
    downsampling_thresholds: list[Annotated[int, Field(ge=1)]]

    @model_validator(mode="after")
    def _thresholds(self) -> MultiDownsamplingConfig:
        if len(self.downsampling_thresholds) != len(self.downsampling_list) - 1:
            count = len(self.downsampling_list)
            raise ValueError(f"downsampling_thresholds: {count} downsamplers take {count - 1} thresholds, not "
                             f"{len(self.downsampling_thresholds)}")  # fmt: skip
        if self.downsampling_thresholds != sorted(set(self.downsampling_thresholds)):
            raise ValueError("downsampling_thresholds must increase: a downsampler between two equal ones would never "
                             "run")  # fmt: skip
        return self

    def at(self, trigger_index: int) -> DownsamplingConfig:
        return self.downsampling_list[bisect.bisect_right(self.downsampling_thresholds, trigger_index)]


def _single_or_multi(value: Any) -> str:
    multi = isinstance(value, MultiDownsamplingConfig) or (isinstance(value, dict) and "downsampling_list" in value)
    return "MultiDownsamplingConfig" if multi else "DownsamplingConfig"


class CoresetStrategy(_Selection):
    name: Literal["CoresetStrategy"]
    warmup_triggers: Annotated[int, Field(ge=0, description="The first triggers train on all their data.")] = 0
    presampling_config: PresamplingConfig = Field(default_factory=PresamplingConfig)
    downsampling_config: Annotated[
        Annotated[DownsamplingConfig, Tag("DownsamplingConfig")]
        | Annotated[MultiDownsamplingConfig, Tag("MultiDownsamplingConfig")],
        Discriminator(_single_or_multi),
    ] = Field(default_factory=DownsamplingConfig)

    def downsampling(self, trigger_index: int | None = None) -> DownsamplingConfig | None:
        """The downsampler of `trigger_index` (None: the first); None with strategy No, and during the
        `warmup_triggers`."""
        warming = trigger_index is not None and trigger_index < self.warmup_triggers
        config = self.downsampling_config
        if isinstance(config, MultiDownsamplingConfig):
            config = config.at(trigger_index or 0)
        return None if config.strategy == "No" or warming else config

    def downsamplers(self) -> list[tuple[str, DownsamplingConfig]]:
        config, where = self.downsampling_config, "selection_strategy.downsampling_config"
        if isinstance(config, MultiDownsamplingConfig):
            return [(f"{where}.downsampling_list[{i}]", c) for i, c in enumerate(config.downsampling_list)]
        return [(where, config)]


SelectionConfig = Annotated[NewDataStrategy | FreshnessSamplingStrategy | CoresetStrategy, Field(discriminator="name")]
