"""Event contracts: Avro schemas from `schemas/` and their codec."""

from modyn_stream.events.codec import DecodedEvent, EventCodec
from modyn_stream.events.exceptions import EventDecodeError, EventEncodeError, SchemaError
from modyn_stream.events.schemas import AvroSchema, SchemaSet, default_schemas

__all__ = [
    "AvroSchema",
    "DecodedEvent",
    "EventCodec",
    "EventDecodeError",
    "EventEncodeError",
    "SchemaError",
    "SchemaSet",
    "default_schemas",
]
