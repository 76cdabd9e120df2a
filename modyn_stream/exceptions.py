"""The root of the project's error types: the CLI prints any of these as one line, without a traceback."""


class ModynStreamError(Exception):
    """An error with a message fit for a user: what went wrong and where."""
