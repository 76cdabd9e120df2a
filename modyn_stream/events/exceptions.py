"""Errors of the event codec: one type for bytes that are not a valid event, one for records that can't be written."""

from modyn_stream.exceptions import ModynStreamError


class EventDecodeError(ModynStreamError, ValueError):
    """Bytes that are not a decodable event: garbage, truncated, unknown framing or fingerprint."""


class EventEncodeError(ModynStreamError, ValueError):
    """A record that does not match its schema."""


class SchemaError(ModynStreamError, ValueError):
    """A schema file that is missing, unparsable, or clashes with another."""
