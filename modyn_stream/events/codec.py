"""Avro codec for events, in the two framings of DESIGN.md ("Contracts").

* Single-object encoding (default, no registry): ``C3 01`` + 8-byte CRC-64-AVRO fingerprint + body.
* Confluent wire format (with a Schema Registry): ``00`` + 4-byte big-endian schema id + body.

Decoding detects the framing from the first byte, looks up the writer schema, and resolves it
against the current reader schema of the same name (schema evolution). Anything that is not a
valid event raises :class:`EventDecodeError`, and nothing else.

>>> codec = EventCodec()
>>> data = codec.encode("SampleEvent", {"dataset": "d", "key": "k1", "event_time": 1000, "payload": b"x"})
>>> data[:2].hex()
'c301'
>>> event = codec.decode(data)
>>> event.name, event.record["key"], event.record["label"]
('SampleEvent', 'k1', None)
"""

from __future__ import annotations

import io
import struct
from typing import Any, NamedTuple, Protocol

import fastavro

from modyn_stream.events.exceptions import EventDecodeError, EventEncodeError, SchemaError
from modyn_stream.events.schemas import AvroSchema, SchemaSet, default_schemas

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = 0x00
_SINGLE_OBJECT_HEADER = 10
_CONFLUENT_HEADER = 5


class DecodedEvent(NamedTuple):
    name: str  # short schema name, e.g. "SampleEvent"
    record: dict[str, Any]


class SchemaRegistry(Protocol):
    """The part of confluent-kafka's SchemaRegistryClient the codec uses."""

    def register_schema(self, subject_name: str, schema: Any) -> int: ...

    def get_schema(self, schema_id: int) -> Any: ...


class RegistrySettings(Protocol):
    """Where a registry is, if any (KafkaSettings has these)."""

    schema_registry_url: str | None

    def registry_config(self) -> dict[str, Any]: ...


class EventCodec:
    """Encodes and decodes events; thread-safe for concurrent use once constructed."""

    def __init__(self, schemas: SchemaSet | None = None, registry: SchemaRegistry | None = None) -> None:
        self.schemas = schemas or default_schemas()
        self.registry = registry
        self._ids_by_name: dict[str, int] = {}
        self._schemas_by_id: dict[int, AvroSchema] = {}

    @classmethod
    def for_settings(cls, settings: RegistrySettings) -> EventCodec:
        """The Confluent wire format when a registry URL is configured, single-object encoding otherwise."""
        if not settings.schema_registry_url:
            return cls()
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(registry=SchemaRegistryClient({"url": settings.schema_registry_url, **settings.registry_config()}))

    # -- encoding ---------------------------------------------------------------------------------

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        schema = self.schemas.get(name)
        buf = io.BytesIO()
        if self.registry is None:
            buf.write(SINGLE_OBJECT_MAGIC)
            buf.write(schema.fingerprint)
        else:
            buf.write(struct.pack(">bI", CONFLUENT_MAGIC, self._registered_id(schema)))
        try:
            fastavro.schemaless_writer(buf, schema.parsed, record, strict_allow_default=True)
        except Exception as exc:
            raise EventEncodeError(f"{name}: record does not match schema: {exc}") from exc
        return buf.getvalue()

    def _registered_id(self, schema: AvroSchema) -> int:
        schema_id = self._ids_by_name.get(schema.name)
        if schema_id is None:
            from confluent_kafka.schema_registry import Schema

            # Subject = record name: one topic carries several event types (samples + end-of-stream).
            schema_id = self.registry.register_schema(schema.full_name, Schema(schema.json, "AVRO"))
            self._ids_by_name[schema.name] = schema_id
            self._schemas_by_id[schema_id] = schema
        return schema_id

    # -- decoding ---------------------------------------------------------------------------------

    def decode(self, data: bytes | None) -> DecodedEvent:
        if not data:
            raise EventDecodeError("empty message: no event bytes")
        if data[:2] == SINGLE_OBJECT_MAGIC:
            writer, offset = self._writer_by_fingerprint(data), _SINGLE_OBJECT_HEADER
        elif data[0] == CONFLUENT_MAGIC:
            writer, offset = self._writer_by_id(data), _CONFLUENT_HEADER
        else:
            raise EventDecodeError(
                f"unknown framing: first bytes {data[:2].hex()} are neither Avro single-object "
                f"(c301) nor Confluent wire format (00)"
            )
        reader = self.schemas.get(writer.name)
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            # Resolution is only needed for an older/newer writer; skipping it halves the decode time.
            record = fastavro.schemaless_reader(buf, writer.parsed, None if writer is reader else reader.parsed)
        except Exception as exc:
            raise EventDecodeError(
                f"{writer.name}: body of {len(data) - offset} bytes is not valid Avro: {type(exc).__name__}: {exc}"
            ) from exc
        if buf.tell() != len(data):
            raise EventDecodeError(f"{writer.name}: {len(data) - buf.tell()} trailing bytes after the record")
        return DecodedEvent(reader.name, record)

    def _writer_by_fingerprint(self, data: bytes) -> AvroSchema:
        if len(data) < _SINGLE_OBJECT_HEADER:
            raise EventDecodeError(f"truncated single-object header: {len(data)} of 10 bytes")
        fingerprint = data[2:_SINGLE_OBJECT_HEADER]
        schema = self.schemas.by_fingerprint(fingerprint)
        if schema is None:
            raise EventDecodeError(
                f"unknown schema fingerprint {fingerprint.hex()} (not a current schema nor in schemas/history)"
            )
        return schema

    def _writer_by_id(self, data: bytes) -> AvroSchema:
        if len(data) < _CONFLUENT_HEADER:
            raise EventDecodeError(f"truncated Confluent header: {len(data)} of 5 bytes")
        (schema_id,) = struct.unpack(">I", data[1:_CONFLUENT_HEADER])
        if self.registry is None:
            raise EventDecodeError(
                f"Confluent wire format (schema id {schema_id}) but no schema registry is configured"
            )
        schema = self._schemas_by_id.get(schema_id)
        if schema is None:
            try:
                registered = self.registry.get_schema(schema_id)
                schema = AvroSchema.from_json(registered.schema_str, source=f"registry schema id {schema_id}")
                self.schemas.add_writer(schema)
            except SchemaError as exc:
                raise EventDecodeError(str(exc)) from exc
            except Exception as exc:
                raise EventDecodeError(f"schema id {schema_id}: registry lookup failed: {exc}") from exc
            self._schemas_by_id[schema_id] = schema
        return schema
