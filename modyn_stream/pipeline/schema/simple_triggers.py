"""The triggers that count samples or time, and the vote of several: what drift and ensemble triggers build on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from modyn_stream.pipeline.schema.base import Strict
from modyn_stream.timeutil import parse_duration, parse_time


class _Trigger(Strict):
    fire_on_end_of_stream: bool = Field(
        False, description="At the end of a replay, fire once more for samples not yet in any trigger."
    )


class DataAmountTrigger(_Trigger):
    id: Literal["DataAmountTrigger"]
    num_samples: Annotated[int, Field(ge=1)]


class TimeTrigger(_Trigger):
    id: Literal["TimeTrigger"]
    every: str
    start_timestamp: int | str | None = None

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("every must be positive")
        return value

    @field_validator("start_timestamp")
    @classmethod
    def _start(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_time(value)
        return value

    @property
    def every_ms(self) -> int:
        return parse_duration(self.every)

    @property
    def start_ms(self) -> int | None:
        return None if self.start_timestamp is None else parse_time(self.start_timestamp)


class MajorityVote(Strict):
    id: Literal["MajorityVote"]


class AtLeastN(Strict):
    id: Literal["AtLeastN"]
    n: Annotated[int, Field(ge=1)]


SimpleTrigger = Annotated[DataAmountTrigger | TimeTrigger, Field(discriminator="id")]
Vote = Annotated[MajorityVote | AtLeastN, Field(discriminator="id")]
