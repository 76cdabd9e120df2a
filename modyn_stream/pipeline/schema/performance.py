"""`trigger: {id: PerformanceTrigger}`: retrain when the current model does worse on new data (Modyn's, hindsight).

Every `evaluation_interval_data_points` samples the model of the last trigger is scored on that interval's
labelled samples; each decision criterion looks at one metric (or, StaticNumberMisclassificationCriterion, at
the misclassifications a retrained model would have avoided) and any one of them fires the trigger.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict, noted
from modyn_stream.pipeline.schema.drift import BatchedTrigger
from modyn_stream.pipeline.schema.evaluation import EvalDataset, Metric


def full_name(metric: Metric) -> str:
    """How Modyn's criteria name a metric: Accuracy (top 1), Top-n-Accuracy, else the metric's name."""
    if metric.name == "Accuracy":
        return "Accuracy" if metric.topn == 1 else f"Top-{metric.topn}-Accuracy"
    return metric.name


class _MetricCriterion(Strict):
    metric: str = Field(description="A metric of evaluation.dataset, by Modyn's name (Accuracy, F1Score, ...).")


class StaticPerformanceThresholdCriterion(_MetricCriterion):
    id: Literal["StaticPerformanceThresholdCriterion"] = "StaticPerformanceThresholdCriterion"
    metric_threshold: float = Field(0.0, description="Fire when the metric is at or below this.")
    needs_calibration: Literal[False] = False


class DynamicQuantilePerformanceThresholdCriterion(_MetricCriterion):
    id: Literal["DynamicQuantilePerformanceThresholdCriterion"] = "DynamicQuantilePerformanceThresholdCriterion"
    window_size: Annotated[int, Field(ge=1)] = 10
    quantile: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.05, description="Fire when the metric is below the `quantile` quantile of its last window_size values."
    )
    needs_calibration: Literal[True] = True


class DynamicRollingAveragePerformanceThresholdCriterion(_MetricCriterion):
    id: Literal["DynamicRollingAveragePerformanceThresholdCriterion"] = (
        "DynamicRollingAveragePerformanceThresholdCriterion"
    )
    window_size: Annotated[int, Field(ge=1)] = 10
    deviation: float = Field(0.05, description="Fire when the metric falls below the rolling average by this.")
    absolute: bool = Field(False, description="Deviation in the metric's units; false: relative to the average.")
    needs_calibration: Literal[True] = True


class AvoidableMisclassifications(Strict):
    """How misclassifications a retrained model would have avoided are counted."""

    expected_accuracy: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        None, description="Accuracy a fresh model would have; None: forecast from the decisions right after triggers."
    )
    allow_reduction: bool = Field(False, description="Intervals better than expected lower the count.")
    needs_calibration: Literal[True] = True


class StaticNumberAvoidableMisclassificationCriterion(AvoidableMisclassifications):
    id: Literal["StaticNumberMisclassificationCriterion"] = "StaticNumberMisclassificationCriterion"
    avoidable_misclassification_threshold: Annotated[int, Field(ge=1)] = Field(
        description="Fire once this many misclassifications since the last trigger were avoidable."
    )


PerformanceCriterion = Annotated[
    StaticPerformanceThresholdCriterion
    | DynamicQuantilePerformanceThresholdCriterion
    | DynamicRollingAveragePerformanceThresholdCriterion
    | StaticNumberAvoidableMisclassificationCriterion,
    Field(discriminator="id"),
]


class PerformanceTriggerEvaluationConfig(Strict):
    device: str = Field(description="Where the model runs for these evaluations.")
    dataset: EvalDataset = Field(description="The pipeline's dataset, with the metrics and decoder to score it by.")
    label_transformer_function: str | None = noted(
        None, "label_transformer_function: labels are compared with predictions as class indices; it is not run"
    )

    @field_validator("dataset")
    @classmethod
    def _accuracy(cls, dataset: EvalDataset) -> EvalDataset:
        if not any(metric.name == "Accuracy" for metric in dataset.metrics):
            raise ValueError("the performance trigger needs the Accuracy metric")
        return dataset


class ScoredTrigger(BatchedTrigger):
    """What a trigger that scores the current model on each interval has (Modyn's internal performance config)."""

    data_density_window_size: Annotated[int, Field(ge=1)] = noted(
        20, "data_density_window_size: only lookahead mode reads it, and only hindsight mode exists (as in Modyn)"
    )
    performance_triggers_window_size: Annotated[int, Field(ge=1)] = Field(
        10, description="How many decisions right after triggers the expected accuracy is forecast from."
    )
    evaluation: PerformanceTriggerEvaluationConfig
    mode: Literal["hindsight", "lookahead"] = "hindsight"
    forecasting_method: Literal["ridge_regression", "rolling_average"] = Field(
        "ridge_regression", description="How the expected accuracy is forecast (ridge: from 5 observations on)."
    )

    @field_validator("mode")
    @classmethod
    def _hindsight(cls, mode: str) -> str:
        if mode == "lookahead":
            raise ValueError("only hindsight mode is supported (as in Modyn)")
        return mode


class PerformanceTrigger(ScoredTrigger):
    id: Literal["PerformanceTrigger"]
    decision_criteria: dict[str, PerformanceCriterion] = Field(min_length=1)

    @model_validator(mode="after")
    def _criteria_fit(self) -> PerformanceTrigger:
        names = {full_name(m) for m in self.evaluation.dataset.metrics}
        for name, criterion in self.decision_criteria.items():
            if isinstance(criterion, _MetricCriterion) and criterion.metric not in names:
                raise ValueError(
                    f"decision_criteria.{name}: metric {criterion.metric!r} is not one of evaluation.dataset's "
                    f"metrics ({', '.join(sorted(names))})"
                )
        if self.warmup_policy is None and any(c.needs_calibration for c in self.decision_criteria.values()):
            raise ValueError("a warmup_policy is required: a criterion that calibrates does so during the warmup")
        return self
