"""`evaluation`: which model versions are scored on which data, when."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline import snippets
from modyn_stream.pipeline.schema.base import Strict, noted
from modyn_stream.pipeline.schema.data import DataFields, recognised
from modyn_stream.timeutil import parse_duration, parse_interval, parse_offset, parse_time


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


class OffsetEvalStrategy(Strict):
    """Windows around each model's own training interval (Modyn's): '-inf', 'inf', or a signed duration."""

    type: Literal["OffsetEvalStrategy"]
    offsets: list[str] = Field(min_length=1)

    @field_validator("offsets")
    @classmethod
    def _offsets(cls, value: list[str]) -> list[str]:
        for offset in value:
            if offset not in ("inf", "+inf", "-inf"):
                parse_offset(offset)
        return value


class StaticEvalStrategy(Strict):
    type: Literal["StaticEvalStrategy"]
    intervals: list[tuple[int | str, int | str | None]] = Field(min_length=1, description="An end of null: open.")

    @field_validator("intervals")
    @classmethod
    def _intervals(cls, value: list) -> list:
        for start, end in value:
            if end is not None and parse_time(end) <= parse_time(start):
                raise ValueError(f"interval ({start}, {end}) ends before it starts")
        return value


def _read_output_transformer(data: Any) -> Any:
    if isinstance(data, dict) and data.get("evaluation_transformer_function"):
        try:
            return {**data, "output_transformer": snippets.output_transformer(data["evaluation_transformer_function"])}
        except snippets.SnippetError:
            pass  # refused by the field's validator, with the reason
    return data


# What each metric scores here, and the Modyn output transformers that give that same score.
_SAME_SCORE = {"Accuracy": {"argmax", "sigmoid_threshold"}, "F1Score": {"argmax", "sigmoid_threshold"},
               "RocAuc": {"sigmoid"}}  # fmt: skip


class Metric(Strict):
    name: Literal["Accuracy", "F1Score", "RocAuc"]
    topn: Annotated[int, Field(ge=1)] = 1
    average: Literal["macro", "micro", "weighted", "binary"] = "macro"
    num_classes: Annotated[int, Field(ge=2)] | None = None
    pos_label: Annotated[int, Field(ge=0)] = Field(1, description="F1Score binary: the positive class.")
    evaluation_transformer_function: str | None = Field(None, description="Modyn's source: read, never run.")
    output_transformer: Literal["argmax", "sigmoid", "sigmoid_threshold"] | None = Field(
        None, description="How model outputs become predictions; Modyn's evaluation_transformer_function."
    )

    _read = model_validator(mode="before")(_read_output_transformer)

    @field_validator("evaluation_transformer_function")
    @classmethod
    def _transformer(cls, value: str | None) -> str | None:
        return recognised(value, snippets.output_transformer) or None

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        if self.average == "binary" and self.num_classes not in (None, 2):
            raise ValueError("a binary F1Score has 2 classes")
        if self.output_transformer is not None and self.output_transformer not in _SAME_SCORE[self.name]:
            raise ValueError(
                f"{self.name} after {self.output_transformer} is not supported: {self.name} here scores "
                f"{'scores ranked as given' if self.name == 'RocAuc' else 'predicted classes'}; "
                f"use {' or '.join(sorted(_SAME_SCORE[self.name]))}"
            )
        return self

    def notes(self) -> list[str]:
        if self.output_transformer in ("argmax", "sigmoid"):
            kind = "the class with the largest output" if self.output_transformer == "argmax" else "the raw outputs"
            field = "evaluation_transformer_function" if self.evaluation_transformer_function else "output_transformer"
            return [f"{field}: {self.output_transformer}: {self.name} already scores {kind}"]
        return []


class EvalDataset(DataFields):
    """A dataset to score models on; without a decoder of its own it decodes as the pipeline's `data`."""

    MODYN_REQUIRED: ClassVar = (
        "batch_size",
        "dataloader_workers",
    )
    dataset_id: str
    batch_size: Annotated[int, Field(ge=1)] = 256
    dataloader_workers: Annotated[int, Field(ge=0)] = noted(
        1, "payloads are fetched and decoded by one loader thread; dataloader_workers is not read"
    )
    metrics: list[Metric] = Field(min_length=1)

    @model_validator(mode="after")
    def _own_decoder(self) -> EvalDataset:
        if self.decoder is None and (self.decoder_config or self.transformations):
            raise ValueError(
                "decoder_config and transformations need this dataset's own decoder (or bytes_parser_function)"
            )
        return self

    def notes(self) -> list[str]:
        if self.label_transformer or self.label_transformer_function:
            return ["label transformer: not applied in evaluation, where labels are compared as class indices"]
        return []


class EvalHandler(Strict):
    MODYN_REQUIRED: ClassVar = ("execution_time",)
    name: str = "Modyn EvalHandler"
    execution_time: Literal["after_training", "after_pipeline", "manual"] = Field(
        "after_training", description="manual: only `modyn-stream evaluate PIPELINE --handler NAME` runs it."
    )
    models: Literal["matrix", "active", "training"] = "active"
    strategy: Annotated[
        SlicingEvalStrategy
        | BetweenTwoTriggersEvalStrategy
        | PeriodicEvalStrategy
        | StaticEvalStrategy
        | OffsetEvalStrategy,
        Field(discriminator="type"),
    ]
    datasets: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _offsets_score_the_trained_model(self) -> EvalHandler:
        if isinstance(self.strategy, OffsetEvalStrategy) and self.models != "training":
            raise ValueError("OffsetEvalStrategy scores each model around its own training data: use models: training")
        return self


class EvaluationSection(Strict):
    MODYN_REQUIRED: ClassVar = ("device",)
    device: str = "cpu"
    handlers: list[EvalHandler] = Field(min_length=1)
    datasets: list[EvalDataset] = Field(min_length=1)
    after_training_evaluation_workers: Annotated[int, Field(ge=1)] = noted(
        5, "one evaluator process scores each model in turn (run more with `service evaluator`); not read"
    )
    after_pipeline_evaluation_workers: Annotated[int, Field(ge=1)] = noted(
        5, "one evaluator process scores each model in turn (run more with `service evaluator`); not read"
    )

    @model_validator(mode="after")
    def _known_datasets(self) -> EvaluationSection:
        ids = [d.dataset_id for d in self.datasets]
        if len(set(ids)) != len(ids):
            raise ValueError(f"evaluation dataset ids must be unique, got {ids}")
        defined = set(ids)
        for handler in self.handlers:
            unknown = [d for d in handler.datasets if d not in defined]
            if unknown:
                raise ValueError(
                    f"handler {handler.name!r} uses undefined dataset(s) {unknown}; defined: {sorted(defined)}"
                )
        return self
