"""`selection_strategy`: what each trigger trains on."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict


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
