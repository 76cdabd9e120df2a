"""`trigger`: when to retrain (simple triggers in `simple_triggers.py`, drift in `drift.py`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modyn_stream.pipeline.schema.cost import AvoidableMisclassificationCostTrigger, DataIncorporationLatencyCostTrigger
from modyn_stream.pipeline.schema.drift import BatchedTrigger, DataDriftTrigger
from modyn_stream.pipeline.schema.performance import PerformanceTrigger
from modyn_stream.pipeline.schema.simple_triggers import (
    AtLeastN,
    DataAmountTrigger,
    MajorityVote,
    SimpleTrigger,
    TimeTrigger,
    Vote,
    _Trigger,
)

__all__ = [
    "AtLeastN",
    "AvoidableMisclassificationCostTrigger",
    "BatchedTrigger",
    "DataAmountTrigger",
    "DataDriftTrigger",
    "DataIncorporationLatencyCostTrigger",
    "EnsembleTrigger",
    "MajorityVote",
    "PerformanceTrigger",
    "TimeTrigger",
    "TriggerConfig",
]  # fmt: skip


class EnsembleTrigger(_Trigger):
    id: Literal["EnsembleTrigger"]
    subtriggers: dict[str, SimpleTrigger] = Field(min_length=1)
    ensemble_strategy: Vote

    @model_validator(mode="after")
    def _n_fits(self) -> EnsembleTrigger:
        if isinstance(self.ensemble_strategy, AtLeastN) and self.ensemble_strategy.n > len(self.subtriggers):
            raise ValueError(f"AtLeastN n={self.ensemble_strategy.n} exceeds the {len(self.subtriggers)} subtriggers")
        return self


TriggerConfig = Annotated[
    DataAmountTrigger
    | TimeTrigger
    | EnsembleTrigger
    | DataDriftTrigger
    | PerformanceTrigger
    | DataIncorporationLatencyCostTrigger
    | AvoidableMisclassificationCostTrigger,
    Field(discriminator="id"),
]
