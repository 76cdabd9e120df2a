"""`pipeline`, `model` and `model_storage`: what is trained and how its versions are stored."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from modyn_stream.pipeline.schema.base import Strict, noted, safe_path_component, self_trust


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


_ZIP = Literal["ZIP_DEFLATED", "ZIP_LZMA", "ZIP_BZIP2", "ZIP_STORED"]


class FullModelStrategy(Strict):
    MODYN_REQUIRED: ClassVar = ("name",)
    name: Literal["PyTorchFullModel", "BinaryFullModel"] = "PyTorchFullModel"
    zip: bool | None = False
    zip_algorithm: _ZIP = "ZIP_DEFLATED"
    config: dict[str, Any] = noted({}, "no full-model strategy takes options; not read")

    def notes(self) -> list[str]:
        if self.name == "BinaryFullModel":
            return ["name: BinaryFullModel is stored as PyTorchFullModel (torch.save of the state_dict)"]
        return []


class WeightsDifferenceConfig(Strict):
    operator: Literal["sub", "xor"] = "sub"
    split_exponent: bool = noted(
        False, "deltas are stored bit-exact in torch's format (zip compresses them); Modyn's byte layout is not used"
    )
    rle: bool = noted(
        False, "deltas are stored bit-exact in torch's format (zip compresses them); Modyn's byte layout is not used"
    )


class IncrementalModelStrategy(Strict):
    MODYN_REQUIRED: ClassVar = ("name",)
    name: Literal["WeightsDifference"] = "WeightsDifference"
    zip: bool | None = False
    zip_algorithm: _ZIP = "ZIP_DEFLATED"
    config: WeightsDifferenceConfig = Field(default_factory=WeightsDifferenceConfig)
    full_model_interval: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Every n-th version is stored in full, bounding the chain of deltas a load walks."
    )

    @property
    def operator(self) -> str:
        return self.config.operator


class ModelStorageSection(Strict):
    MODYN_REQUIRED: ClassVar = ("full_model_strategy",)
    full_model_strategy: FullModelStrategy = Field(default_factory=FullModelStrategy)
    incremental_model_strategy: IncrementalModelStrategy | None = None

    @property
    def full_model_interval(self) -> int | None:
        incremental = self.incremental_model_strategy
        return None if incremental is None else incremental.full_model_interval
