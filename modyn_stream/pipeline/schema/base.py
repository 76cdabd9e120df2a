"""What every section shares: strict models (a typo is an error), safe names, the trust refusal."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

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
