"""Modyn's cost-aware triggers: fire when the regret of not retraining outweighs the training it costs.

The regret is a latency (Modyn's incorporation latency): the area under the curve of samples, or avoidable
misclassifications, waiting since the last trigger, in seconds of event time. Scaled by the config's
conversion factor it is compared, as Modyn compares them, with the training seconds a trigger now would cost:
forecast from the measured training times of earlier triggers (Modyn's way, which depends on the machine),
or, with `cost_model: linear` (modyn-stream's), from the samples waiting, so that a replay gives the same
triggers anywhere.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from modyn_stream.pipeline.schema.drift import BatchedTrigger
from modyn_stream.pipeline.schema.performance import AvoidableMisclassifications, ScoredTrigger


class _CostTrigger(BatchedTrigger):
    cost_tracking_window_size: Annotated[int, Field(ge=1)] = Field(
        1000, description="How many past triggers the measured cost model is fitted on."
    )
    cost_model: Literal["measured", "linear"] = Field(
        "measured", description="modyn-stream's: measured training times (Modyn) or seconds_per_sample."
    )
    seconds_per_sample: Annotated[float, Field(ge=0.0)] | None = Field(
        None, description="cost_model linear: training seconds per sample waiting."
    )
    seconds_per_trigger: Annotated[float, Field(ge=0.0)] = Field(
        0.0, description="cost_model linear: training seconds of any trigger, on top."
    )

    @model_validator(mode="after")
    def _cost_model(self):
        if self.cost_model == "linear" and self.seconds_per_sample is None:
            raise ValueError("cost_model linear needs seconds_per_sample")
        if self.cost_model == "measured" and (self.seconds_per_sample is not None or self.seconds_per_trigger):
            raise ValueError("seconds_per_sample and seconds_per_trigger are read with cost_model: linear only")
        return self


class DataIncorporationLatencyCostTrigger(_CostTrigger):
    id: Literal["DataIncorporationLatencyCostTrigger"]
    incorporation_delay_per_training_second: float = Field(
        description="The conversion factor: sample-seconds of waiting per second of training."
    )


class AvoidableMisclassificationCostTrigger(_CostTrigger, ScoredTrigger, AvoidableMisclassifications):
    id: Literal["AvoidableMisclassificationCostTrigger"]
    avoidable_misclassification_latency_per_training_second: float = Field(
        description="The conversion factor: misclassification-seconds of waiting per second of training."
    )

    @model_validator(mode="after")
    def _warmup(self) -> AvoidableMisclassificationCostTrigger:
        if self.warmup_policy is None:
            raise ValueError("a warmup_policy is required for cost triggers (as in Modyn)")
        return self


CostTrigger = DataIncorporationLatencyCostTrigger | AvoidableMisclassificationCostTrigger
