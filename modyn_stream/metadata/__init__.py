"""Storage: the ClickHouse metadata store (chDB embedded or a server), one SQL dialect, one code path."""

from modyn_stream.metadata.exceptions import MetadataError
from modyn_stream.metadata.store import MetadataStore

__all__ = ["MetadataError", "MetadataStore"]
