"""Errors of the metadata store."""

from modyn_stream.exceptions import ModynStreamError


class MetadataError(ModynStreamError):
    """The metadata store is unreachable, misconfigured, or a statement failed."""
