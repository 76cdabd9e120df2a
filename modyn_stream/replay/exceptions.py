"""Errors of replay inputs."""

from modyn_stream.exceptions import ModynStreamError


class ReplayInputError(ModynStreamError):
    """An input file is missing or malformed; the message names the file and the position."""

    def __init__(self, path: object, position: str, reason: str) -> None:
        super().__init__(f"{path}: {position}: {reason}")
