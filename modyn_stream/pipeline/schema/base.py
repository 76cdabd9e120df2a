"""What every section shares: strict models (a typo is an error), safe names, the trust refusal."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from modyn_stream.pipeline.trust import HOW_TO_TRUST


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def safe_path_component(value: str) -> str:
    """A name that is used as one directory name (run directory, artifact folders): never a path.

    Spaces and punctuation are fine (Modyn's names have them); separators, '.', '..' and control
    characters are not, so no name can make a run write or delete outside its root.
    """
    if len(value) > 128 or value in {".", ".."} or any(c in "/\\" or not c.isprintable() for c in value):
        raise ValueError(
            f"{value!r} is not a safe name: it names a directory, so use at most 128 printable characters "
            "without '/' or '\\', and not '.' or '..'"
        )
    return value


def self_trust(value: object) -> None:
    """A pipeline file cannot trust its own code: the operator does (see pipeline/trust.py)."""
    if value is not None:
        raise ValueError(f"a pipeline file cannot trust its own code: {HOW_TO_TRUST}")


def noted(default: Any, note: str, **constraints: Any) -> Any:
    """A Modyn field that has no effect here: accepted so Modyn's files validate, and `note` (what happens
    instead) printed by `validate` and `run` whenever a file gives it (see pipeline/notes.py)."""
    return Field(default, json_schema_extra={"note": note}, **constraints)


def note_of(field: FieldInfo) -> str | None:
    extra = field.json_schema_extra
    return extra.get("note") if isinstance(extra, dict) else None  # type: ignore[return-value]
