"""`pipeline`, `model` and `model_storage`: what is trained and how its versions are stored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline.schema.base import Strict, safe_path_component, self_trust


class PipelineInfo(Strict):
    name: Annotated[str, Field(min_length=1)]
    description: str | None = None
    version: str | None = None

    _name = field_validator("name")(safe_path_component)


class ModelSection(Strict):
    id: Annotated[str, Field(min_length=1, description="A model id, or module:Class (where the operator trusts it).")]
    config: dict[str, Any] = Field(default_factory=dict)
    trusted: Any = Field(None, description="Refused: trust comes from the operator, not the file.")

    _trusted = field_validator("trusted")(self_trust)


class FullModelStrategy(Strict):
    name: Literal["PyTorchFullModel", "BinaryFullModel"] = "PyTorchFullModel"
    zip: bool = False
    zip_algorithm: Literal["ZIP_DEFLATED", "ZIP_LZMA", "ZIP_BZIP2"] = "ZIP_DEFLATED"


class IncrementalModelStrategy(Strict):
    name: Literal["WeightsDifference"] = "WeightsDifference"
    operator: Literal["sub", "xor"] = "sub"
    zip: bool = False


class ModelStorageSection(Strict):
    full_model_strategy: FullModelStrategy = Field(default_factory=FullModelStrategy)
    incremental_model_strategy: IncrementalModelStrategy | None = None
    full_model_interval: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _interval_needs_incremental(self) -> ModelStorageSection:
        if self.full_model_interval is not None and self.incremental_model_strategy is None:
            raise ValueError("full_model_interval only applies with an incremental_model_strategy")
        return self
