"""No config field is silently accepted: each one is read by code outside the schema, or carries a note
that `validate` prints (schema/base.py `noted`)."""

import re
from pathlib import Path

from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.loading import _all_models
from modyn_stream.pipeline.schema.base import Strict, note_of, noted

PACKAGE = Path(__file__).resolve().parents[2] / "modyn_stream"
READ_BY_THE_SCHEMA = {
    # discriminators: they pick the class a section becomes
    "id", "name", "type", "strategy",
    # Modyn's source fields: validation reads them into decoder, label_transformer and output_transformer
    "bytes_parser_function", "label_transformer_function", "evaluation_transformer_function",
    # checked against its metric by validation: each one allowed gives the metric's own score
    "output_transformer",
    # refused when given: trust (from the operator only), tokenizers and drift preprocessors (until Modyn's text
    # models land)
    "trusted", "tokenizer", "preprocessor",
    # one value allowed, the one computed
    "kernel",
    # downsampling: a strategy but No is refused; with No, each field given gets a note (its notes())
    "downsampling_config", "sample_then_batch", "period",
    # Modyn's MultiDownsamplingConfig: the schema's downsampling(trigger) picks the downsampler the trainer runs
    "downsampling_list", "downsampling_thresholds",
    # descriptive only
    "description", "version",
}  # fmt: skip


def code_outside_the_schema() -> str:
    return "\n".join(
        path.read_text() for path in PACKAGE.rglob("*.py") if "schema" not in path.parts and path.name != "config.py"
    )


def unread(models: list[type], code: str) -> list[str]:
    return [
        f"{model.__name__}.{name}"
        for model in models
        for name, field in model.model_fields.items()
        if name not in READ_BY_THE_SCHEMA and not note_of(field)
        and not re.search(rf"\.{name}\b|\"{name}\"|'{name}'", code)
    ]  # fmt: skip


def test_every_field_is_read_or_noted():
    assert unread(_all_models(PipelineConfig), code_outside_the_schema()) == []


def test_a_field_nothing_reads_is_found_and_a_noted_one_is_not():
    class Section(Strict):
        never_read_anywhere: int = 0
        infrastructure_knob: int = noted(1, "not read here")

    assert unread([Section], code_outside_the_schema()) == ["Section.never_read_anywhere"]
