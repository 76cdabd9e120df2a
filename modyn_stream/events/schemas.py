"""Load the Avro schemas in `schemas/` once, and index them by name and fingerprint.

The `.avsc` files are the single source of truth. Logical types are documentation for other
readers; the codec strips them so timestamps stay plain integers (milliseconds since the epoch),
which neither changes the bytes on the wire nor the schema fingerprints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema

from modyn_stream._resources import resource_dir
from modyn_stream.events.exceptions import SchemaError

NAMESPACE = "modyn_stream.events"


def _strip_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


@dataclass(frozen=True)
class AvroSchema:
    """One parsed schema with what the codec needs: its name, fingerprint and JSON text."""

    name: str  # short name, e.g. "SampleEvent"
    full_name: str
    json: str  # the schema as written (logical types kept), for registries and other readers
    parsed: Any = field(repr=False)
    fingerprint: bytes = field(repr=False)  # CRC-64-AVRO, little-endian, as single-object encoding carries it

    @classmethod
    def from_json(cls, text: str | dict, source: str = "<string>") -> AvroSchema:
        try:
            raw = json.loads(text) if isinstance(text, str) else text
            parsed = fastavro.parse_schema(_strip_logical_types(raw))
            canonical = fastavro.schema.to_parsing_canonical_form(parsed)
        except Exception as exc:
            raise SchemaError(f"{source}: not a valid Avro schema: {exc}") from exc
        if not isinstance(parsed, dict) or parsed.get("type") != "record":
            raise SchemaError(f"{source}: an event schema must be an Avro record")
        full_name = parsed["name"]
        return cls(
            name=full_name.rsplit(".", 1)[-1],
            full_name=full_name,
            json=json.dumps(raw, separators=(",", ":")),
            parsed=parsed,
            fingerprint=bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO")),
        )

    @classmethod
    def from_file(cls, path: Path) -> AvroSchema:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SchemaError(f"{path}: cannot read schema: {exc.strerror}") from exc
        return cls.from_json(text, source=str(path))


class SchemaSet:
    """The current (reader) schemas by name, plus every known writer schema by fingerprint."""

    def __init__(self, current: list[AvroSchema], history: list[AvroSchema] = ()) -> None:
        self._by_name: dict[str, AvroSchema] = {}
        self._by_fingerprint: dict[bytes, AvroSchema] = {}
        for schema in current:
            if schema.name in self._by_name:
                raise SchemaError(f"two schemas are named {schema.name}")
            self._by_name[schema.name] = schema
            self._by_name[schema.full_name] = schema
        for schema in [*current, *history]:
            self.add_writer(schema)

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaSet:
        """Load `*.avsc` from the schemas directory and older versions from its `history/` folder."""
        directory = directory or resource_dir("schemas")
        current = [AvroSchema.from_file(p) for p in sorted(directory.glob("*.avsc"))]
        if not current:
            raise SchemaError(f"{directory}: no *.avsc schema files")
        history = [AvroSchema.from_file(p) for p in sorted((directory / "history").glob("*.avsc"))]
        return cls(current, history)

    def add_writer(self, schema: AvroSchema) -> None:
        """Make events written with `schema` decodable (it must share a name with a current schema)."""
        if schema.name not in self._by_name:
            raise SchemaError(f"writer schema {schema.full_name} has no current schema of that name")
        self._by_fingerprint[schema.fingerprint] = schema

    def get(self, name: str) -> AvroSchema:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(n for n in self._by_name if "." not in n))
            raise SchemaError(f"unknown event type {name!r} (known: {known})") from None

    def by_fingerprint(self, fingerprint: bytes) -> AvroSchema | None:
        return self._by_fingerprint.get(fingerprint)

    def names(self) -> list[str]:
        return sorted(n for n in self._by_name if "." not in n)


_default: SchemaSet | None = None


def default_schemas() -> SchemaSet:
    """The project's schemas, parsed once per process."""
    global _default
    if _default is None:
        _default = SchemaSet.load()
    return _default
