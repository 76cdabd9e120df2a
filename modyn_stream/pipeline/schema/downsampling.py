"""`selection_strategy.downsampling_config`: Modyn's in-trainer downsampling, one downsampler or several switched at
triggers (training/downsampling.py, training/coresets.py, training/rho_loss.py apply them)."""

from __future__ import annotations

import bisect
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from modyn_stream.pipeline.schema.base import Strict
from modyn_stream.pipeline.schema.training import TrainingSection


def _ratio_within(ratio: int, ratio_max: int) -> None:
    if ratio > ratio_max:
        raise ValueError(f"ratio {ratio} exceeds ratio_max {ratio_max}")


class ILTrainingConfig(TrainingSection):
    """Modyn's `il_training_config`: how RHO-Loss's irreducible-loss model is trained on the holdout set, a
    `training` section with its own model (Modyn fixes the rest: random start, no sample budget, no checkpoints)."""

    il_model_id: Annotated[str, Field(min_length=1)]
    il_model_config: dict[str, Any] = Field(default_factory=dict)
    drop_last_batch: bool = False  # Modyn's default here
    num_samples_to_pass: None = None
    initial_model: Literal["random"] = "random"
    initial_model_id: None = None
    initial_model_path: None = None

    @model_validator(mode="after")
    def _no_checkpoints(self) -> ILTrainingConfig:
        if self.checkpointing.activated:
            raise ValueError("checkpointing: the irreducible-loss model is trained without checkpoints (as in Modyn)")
        return self


GREEDY = Literal["NaiveGreedy", "LazyGreedy", "StochasticGreedy", "ApproximateLazyGreedy"]
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
    "holdout_set_strategy": ("RHOLoss",),
    "holdout_set_ratio": ("RHOLoss",),
    "holdout_set_ratio_max": ("RHOLoss",),
    "il_training_config": ("RHOLoss",),
}
DEFAULTS = {  # Modyn's defaults of those fields, per strategy (RS2 only samples then batches)
    "RS2": {"sample_then_batch": True},
    "RHOLoss": {"holdout_set_ratio_max": 100},
    "GradMatch": {"full_grad_approximation": "LastLayer"},
    "Craig": {"full_grad_approximation": "LastLayer", "selection_batch": 64, "greedy": "NaiveGreedy"},
    "Submodular": {
        "full_grad_approximation": "LastLayer",
        "selection_batch": 64,
        "submodular_optimizer": "NaiveGreedy",
    },
}
REQUIRED = {
    "Uncertainty": ("score_metric",),
    "RS2": ("with_replacement",),
    "Submodular": ("submodular_function",),
    "RHOLoss": ("holdout_set_strategy", "holdout_set_ratio", "il_training_config"),
}


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
    holdout_set_strategy: Literal["Simple", "Twin"] | None = Field(
        None,
        description="RHOLoss's: one irreducible-loss model on a holdout of the trigger's new samples, or two "
        "on its two halves, each scoring the half it did not see.",
    )
    holdout_set_ratio: Annotated[int, Field(ge=1)] | None = Field(
        None, description="RHOLoss's, of holdout_set_ratio_max."
    )
    holdout_set_ratio_max: Annotated[int, Field(ge=1)] | None = None
    il_training_config: ILTrainingConfig | None = None

    def notes(self) -> list[str]:
        if self.strategy == "No":
            return [
                f"{name}: not read with downsampling strategy No"
                for name in sorted(self.model_fields_set - {"strategy"})
            ]
        notes = []
        if "period" in self.model_fields_set and not self.sample_then_batch:
            notes.append("period: only sample-then-batch reads it (as in Modyn)")
        if "selection_batch" in self.model_fields_set and self.submodular_function == "LogDeterminant":
            notes.append("selection_batch: LogDeterminant's gains sum no similarity rows; not read")
        return notes

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {**DEFAULTS.get(data.get("strategy", "No"), {}), **data}

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
        missing = [name for name in REQUIRED.get(self.strategy, ()) if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.strategy} downsampling needs {', '.join(missing)}")
        if self.strategy == "RHOLoss":
            if self.holdout_set_ratio > self.holdout_set_ratio_max:
                raise ValueError(f"holdout_set_ratio {self.holdout_set_ratio} exceeds holdout_set_ratio_max "
                                 f"{self.holdout_set_ratio_max}")  # fmt: skip
            if self.holdout_set_strategy == "Twin" and 2 * self.holdout_set_ratio != self.holdout_set_ratio_max:
                raise ValueError("holdout_set_strategy Twin splits the trigger's new samples in halves: its "
                                 "holdout_set_ratio is half of holdout_set_ratio_max (50 of 100, as in "
                                 "Modyn)")  # fmt: skip
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
