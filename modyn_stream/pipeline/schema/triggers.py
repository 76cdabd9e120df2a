"""`trigger`: when to retrain (simple triggers in `simple_triggers.py`, drift in `drift.py`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modyn_stream.pipeline.schema.base import Strict
from modyn_stream.pipeline.schema.cost import AvoidableMisclassificationCostTrigger, DataIncorporationLatencyCostTrigger
from modyn_stream.pipeline.schema.drift import BatchedTrigger, DataDriftTrigger
from modyn_stream.pipeline.schema.performance import PerformanceTrigger
from modyn_stream.pipeline.schema.simple_triggers import (
    AtLeastN,
    DataAmountTrigger,
    MajorityVote,
    TimeTrigger,
    _Trigger,
)

__all__ = [
    "AtLeastN",
    "AvoidableMisclassificationCostTrigger",
    "BatchedTrigger",
    "CustomVote",
    "DataAmountTrigger",
    "DataDriftTrigger",
    "DataIncorporationLatencyCostTrigger",
    "EnsembleTrigger",
    "MajorityVote",
    "PerformanceTrigger",
    "TimeTrigger",
    "TriggerConfig",
]  # fmt: skip


class CustomVote(Strict):
    """Modyn's CustomEnsembleStrategy: a function of {subtrigger: fired since the last trigger} -> fire, named as
    `module:function` and imported only where the operator trusts the module."""

    id: Literal["Custom"]
    aggregation_function: str = Field(pattern=r"^[\w.]+:\w+$")


Subtrigger = Annotated[
    DataAmountTrigger
    | TimeTrigger
    | DataDriftTrigger
    | PerformanceTrigger
    | DataIncorporationLatencyCostTrigger
    | AvoidableMisclassificationCostTrigger,
    Field(discriminator="id"),
]


class EnsembleTrigger(_Trigger):
    id: Literal["EnsembleTrigger"]
    subtriggers: dict[str, Subtrigger] = Field(min_length=1)
    ensemble_strategy: Annotated[MajorityVote | AtLeastN | CustomVote, Field(discriminator="id")]

    @model_validator(mode="after")
    def _n_fits(self) -> EnsembleTrigger:
        if isinstance(self.ensemble_strategy, AtLeastN) and self.ensemble_strategy.n > len(self.subtriggers):
            raise ValueError(f"AtLeastN n={self.ensemble_strategy.n} exceeds the {len(self.subtriggers)} subtriggers")
        return self


def is_batched(trigger) -> bool:
    """Whether deciding the trigger takes Modyn's batched decisions (its own or a subtrigger's), or a custom vote
    (decided step by step too)."""
    if isinstance(trigger, EnsembleTrigger):
        subs = trigger.subtriggers.values()
        return isinstance(trigger.ensemble_strategy, CustomVote) or any(isinstance(s, BatchedTrigger) for s in subs)
    return isinstance(trigger, BatchedTrigger)


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
