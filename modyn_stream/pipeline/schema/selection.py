"""`selection_strategy`: what each trigger trains on."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict, noted
from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig, MultiDownsamplingConfig, _ratio_within


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
