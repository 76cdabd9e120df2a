"""`data` and evaluation datasets: which dataset, and how its payload bytes become tensors.

Decoders, transformations and label transformers are named (training/decoders.py), or
`module:function` where the operator trusts that module. Modyn's Python-in-YAML fields
(`bytes_parser_function`, `transformations` strings, `label_transformer_function`) are read as the
named ones they amount to, by parsing, never by running them (pipeline/snippets.py).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from modyn_stream.pipeline import snippets
from modyn_stream.pipeline.schema.base import Strict, self_trust

_DATASET_ID = re.compile(r"^[A-Za-z0-9_-]+$")
LABEL_TRANSFORMERS = ("float",)


def recognised(value: str | None, read) -> str | None:
    """`value` if it is empty or one of Modyn's snippets that `read` knows; else the reason it is not."""
    if value:
        try:
            read(value)
        except snippets.SnippetError as exc:
            raise ValueError(f"not one of Modyn's standard snippets (it is never run here): {exc}") from None
    return value


def _read_modyn_fields(data: Any) -> Any:
    """Modyn's code fields as our named ones, where they are recognised (else their validators refuse them)."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    try:
        if data.get("bytes_parser_function"):
            decoder, config = snippets.bytes_parser(data["bytes_parser_function"])
            if data.get("decoder") not in (None, decoder):  # equal when a stored config is read back
                raise ValueError("give decoder or bytes_parser_function, not both")
            data["decoder"], data["decoder_config"] = decoder, {**config, **(data.get("decoder_config") or {})}
        if data.get("label_transformer_function") and "label_transformer" not in data:
            data["label_transformer"] = snippets.label_transformer(data["label_transformer_function"])
    except snippets.SnippetError:
        pass
    if isinstance(data.get("transformations"), list):
        data["transformations"] = [_transformation(t) for t in data["transformations"]]
    return data


def _transformation(value: Any) -> Any:
    if isinstance(value, str) and "(" in value:
        try:
            return snippets.transformation(value)
        except snippets.SnippetError:
            return value  # refused by the validator below, with the reason
    return value


TOKENIZERS = ("DistilBertTokenizerTransform",)  # Modyn's; training/text.py


class DataFields(Strict):
    """How payloads are decoded; shared by `data` and each evaluation dataset."""

    decoder: str | None = Field(None, description="A named payload decoder, or module:function when trusted.")
    decoder_config: dict[str, Any] = Field(default_factory=dict)
    transformations: list[str | dict[str, Any]] = Field(default_factory=list)
    label_transformer: str | None = Field(None, description="float, or module:function when trusted.")
    bytes_parser_function: str | None = Field(None, description="Modyn's parser source: read, never run.")
    label_transformer_function: str = Field("", description="Modyn's label transformer source: read, never run.")
    tokenizer: str | None = Field(None, description="Modyn's tokenizer class name.")

    _read = model_validator(mode="before")(_read_modyn_fields)

    @field_validator("bytes_parser_function")
    @classmethod
    def _parser(cls, value: str | None) -> str | None:
        return recognised(value, snippets.bytes_parser)

    @field_validator("label_transformer_function")
    @classmethod
    def _labels(cls, value: str) -> str:
        return recognised(value, snippets.label_transformer) or ""

    @field_validator("transformations")
    @classmethod
    def _transformations(cls, value: list) -> list:
        for item in value:
            if isinstance(item, str) and "(" in item:
                snippets.transformation(item)  # raises the reason it is not read
        return value

    @field_validator("label_transformer")
    @classmethod
    def _label_transformer(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value and value not in LABEL_TRANSFORMERS:
            raise ValueError(f"unknown label transformer {value!r}; known: {', '.join(LABEL_TRANSFORMERS)}")
        return value

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, value: str | None) -> str | None:
        if value is not None and value not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {value!r}; known: {', '.join(TOKENIZERS)} (Modyn's)")
        return value

    @model_validator(mode="after")
    def _tokenized_text(self) -> DataFields:
        """The tokenizer reads the payload as text (Modyn's `str(data, 'utf8')` parser, decoder text)."""
        if self.tokenizer is not None and (self.decoder not in (None, "text") or self.transformations):
            raise ValueError(f"tokenizer {self.tokenizer} reads UTF-8 text: it takes decoder text (Modyn's "
                             "str(data, 'utf8') parser) and no transformations")  # fmt: skip
        return self

    def code_references(self, where: str) -> list[tuple[str, str]]:
        """(field, module:function) of every reference to code in this section."""
        named = [(f"{where}.decoder", self.decoder or ""), (f"{where}.label_transformer", self.label_transformer or "")]
        named += [(f"{where}.transformations", t if isinstance(t, str) else str(t.get("name", "")))
                  for t in self.transformations]  # fmt: skip
        return [(field, reference) for field, reference in named if ":" in reference]


class DataSection(DataFields):
    dataset_id: str
    decoder: str = Field("raw", description="A named payload decoder, or module:function when trusted.")
    trusted: Any = Field(None, description="Refused: trust comes from the operator, not the file.")

    _trusted = field_validator("trusted")(self_trust)

    @field_validator("dataset_id")
    @classmethod
    def _dataset(cls, value: str) -> str:
        if not _DATASET_ID.match(value):
            raise ValueError("dataset_id may only contain letters, digits, '_' and '-'")
        return value
