"""`evaluation`: which model versions are scored on which data, when."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict
from modyn_stream.timeutil import parse_duration, parse_interval, parse_time


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
