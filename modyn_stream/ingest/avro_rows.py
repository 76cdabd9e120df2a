"""Avro rows for the ingest fast path: SampleEvent bodies, each followed by where it came from.

An Avro record is the concatenation of its fields' encodings, so a SampleEvent body followed by
the encodings of (topic, kafka_partition, kafka_offset, check) is a valid record of a schema that
extends SampleEvent with those four fields. Bodies are never decoded in Python: they are wrapped,
unchanged, in one Avro object-container block, and ClickHouse parses and checks them
(`samples_avro` in metadata/migrations.py).
"""

from __future__ import annotations

import io
import json

import fastavro

from modyn_stream.events.schemas import AvroSchema
from modyn_stream.metadata.migrations import ROW_CHECK

_SYNC = b"modyn-stream-ocf"  # 16 bytes
COLUMNS = [
    "dataset", "key", "event_time", "label", "payload", "payload_uri",
    "topic", "kafka_partition", "kafka_offset", "check",
]  # fmt: skip


def _varint(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)  # zig-zag, as Avro encodes int and long
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class AvroRowBlock:
    """Collects rows of one batch and renders them as an Avro object container file."""

    def __init__(self, sample_schema: AvroSchema) -> None:
        raw = json.loads(sample_schema.json)
        raw["name"] = "IngestRow"
        raw["fields"] = [
            *raw["fields"],
            {"name": "topic", "type": "string"},
            {"name": "kafka_partition", "type": "int"},
            {"name": "kafka_offset", "type": "long"},
            {"name": "check", "type": "long"},
        ]
        header = io.BytesIO()
        fastavro.write.Writer(header, fastavro.parse_schema(raw), codec="null", sync_marker=_SYNC).flush()
        self._header = header.getvalue()
        self._parts: list[bytes] = []
        self._topics: dict[str, bytes] = {}
        self.rows = 0

    def add(self, body: bytes, topic: str, partition: int, offset: int) -> None:
        encoded_topic = self._topics.get(topic)
        if encoded_topic is None:
            encoded_topic = self._topics[topic] = _varint(len(topic.encode())) + topic.encode()
        self._parts.append(body)
        self._parts.append(encoded_topic + _varint(partition) + _varint(offset) + _varint(offset ^ ROW_CHECK))
        self.rows += 1

    def render(self) -> bytes:
        data = b"".join(self._parts)
        return b"".join((self._header, _varint(self.rows), _varint(len(data)), data, _SYNC))
