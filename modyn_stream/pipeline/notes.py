"""Notes on a valid pipeline: what it asks for that works differently here, one line each.

Modyn's infrastructure fields (`training.gpus`, prefetching, selector memory, worker counts) and
Modyn's code snippets read as named decoders are accepted so Modyn's files run; each one a file
gives gets a note saying what happens instead. Fields Modyn requires and a section leaves to our
defaults (a model's `MODYN_REQUIRED`) are named too, so a file that Modyn would refuse says so.
`validate` and `run` print them.
"""

from __future__ import annotations

from pydantic import BaseModel

from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.schema.base import note_of


def field_notes(model: BaseModel, where: str = "", portability: bool = True) -> list[str]:
    """The notes of every field `model` (and the models in it) was given, as 'yaml.path: note'; with
    `portability`, also the fields Modyn requires that it leaves to defaults."""
    found = []
    for name in sorted(model.model_fields_set):
        path = f"{where}.{name}" if where else name
        if note := note_of(type(model).model_fields[name]):
            found.append(f"{path}: {note}")
        found += _nested(getattr(model, name), path, portability)
    defaulted = [n for n in getattr(model, "MODYN_REQUIRED", ()) if portability and n not in model.model_fields_set]
    if defaulted:
        shown = ", ".join(_default(model, n) for n in defaulted)
        found.append(f"{where or '(top level)'}: Modyn requires {shown}, which this file leaves to the defaults here")
    own = getattr(model, "notes", None)
    if callable(own):
        found += [f"{where}.{line}" if where else line for line in own()]
    return found


def _model_notes(config: PipelineConfig) -> list[str]:
    """What a built-in model does differently with its config: its own `config_notes`, if it has them."""
    from modyn_stream.training.models import MODELS

    own = getattr(MODELS.get(config.model.id), "config_notes", None)
    return [f"model.config.{line}" for line in own(config.model.config)] if own else []


def _default(model: BaseModel, name: str) -> str:
    value = getattr(model, name)
    return f"{name} ({value!r})" if isinstance(value, bool | int | float | str | type(None) | list | tuple) else name


def _nested(value: object, path: str, portability: bool) -> list[str]:
    if isinstance(value, BaseModel):
        return field_notes(value, path, portability)
    if isinstance(value, list | tuple):
        return [n for i, item in enumerate(value) for n in _nested(item, f"{path}[{i}]", portability)]
    if isinstance(value, dict):
        return [n for key, item in value.items() for n in _nested(item, f"{path}.{key}", portability)]
    return []


def pipeline_notes(config: PipelineConfig, portability: bool = True) -> list[str]:
    """Field notes, the decoders read from Modyn's snippets, and what this machine lacks; with `portability`,
    the fields Modyn requires that the file leaves to defaults (for `validate`; `run` leaves them out)."""
    from modyn_stream.pipeline import checks

    found = field_notes(config, portability=portability)
    datasets = [("data", config.data)] + [
        (f"evaluation.datasets[{i}]", d) for i, d in enumerate(config.evaluation.datasets if config.evaluation else [])
    ]
    for where, data in datasets:
        if data.bytes_parser_function:
            options = f" {data.decoder_config}" if data.decoder_config else ""
            found.append(f"{where}.bytes_parser_function: read as decoder {data.decoder}{options} (not run)")
        if data.label_transformer_function:
            found.append(f"{where}.label_transformer_function: read as label_transformer {data.label_transformer}")
    found += _model_notes(config)
    found += [f"{problem} (the service that runs it needs one)" for problem in checks.device_problems(config)]
    found += [f"{problem} (the trainer needs it)" for problem in checks.weights_problems(config)]
    return found
