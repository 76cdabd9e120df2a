"""`data`: which dataset a pipeline trains on and how its payload bytes become tensors."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict, self_trust

_DATASET_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class DataSection(Strict):
    dataset_id: str
    decoder: str = Field("raw", description="A named payload decoder, or module:function when trusted.")
    decoder_config: dict[str, Any] = Field(default_factory=dict)
    transformations: list[str | dict[str, Any]] = Field(default_factory=list)
    label_transformer: str | None = None
    trusted: Any = Field(None, description="Refused: trust comes from the operator, not the file.")
    bytes_parser_function: str | None = Field(None, description="Modyn's Python-in-YAML; never executed here.")

    _trusted = field_validator("trusted")(self_trust)

    @field_validator("dataset_id")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if not _DATASET_ID.match(value):
            raise ValueError("dataset_id may only contain letters, digits, '_' and '-'")
        return value

    @model_validator(mode="after")
    def _no_code(self) -> DataSection:
        if self.bytes_parser_function is not None:
            raise ValueError(
                "bytes_parser_function holds Python source, which modyn-stream never executes; "
                "use a named decoder (e.g. decoder: raw) or decoder: module:function where the operator trusts it"
            )
        return self

    def code_references(self) -> list[tuple[str, str]]:
        """(field, module:function) of every reference to code in this section."""
        named = [("data.decoder", self.decoder), ("data.label_transformer", self.label_transformer or "")]
        named += [("data.transformations", t if isinstance(t, str) else str(t.get("name", "")))
                  for t in self.transformations]  # fmt: skip
        return [(field, reference) for field, reference in named if ":" in reference]
