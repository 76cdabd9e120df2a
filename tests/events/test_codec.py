import copy
import json
import struct

import pytest

from modyn_stream._resources import resource_dir
from modyn_stream.events import AvroSchema, EventCodec, EventDecodeError, EventEncodeError, SchemaSet
from modyn_stream.events.codec import SINGLE_OBJECT_MAGIC

SAMPLES = {
    "SampleEvent": {
        "dataset": "digits",
        "key": "s-1",
        "event_time": 1_700_000_000_123,
        "label": 7,
        "payload": bytes(range(64)),
        "payload_uri": None,
        "content_type": "application/x-uint8;shape=8,8",
        "attributes": {"source": "test"},
    },
    "EndOfStream": {
        "dataset": "digits",
        "replay_id": "r1",
        "partition": 2,
        "num_samples": 10,
        "max_event_time": 5,
        "produced_at": 6,
    },
    "IngestProgress": {
        "dataset": "digits",
        "topic": "ns.samples.digits",
        "partition": 0,
        "next_offset": 100,
        "max_event_time": None,
        "samples_ingested": 99,
        "end_of_stream": True,
        "updated_at": 7,
    },
    "TriggerEvent": {
        "pipeline_id": "p",
        "dataset": "digits",
        "trigger_index": 3,
        "boundary_event_time": 9,
        "boundary_key": "k",
        "num_new_samples": 100,
        "reason": "DataAmountTrigger(num_samples=100)",
        "watermark": 8,
        "ingest_offsets": {"0": 40, "1": 60},
        "fired_at": 10,
    },
    "TrainingSetEvent": {
        "pipeline_id": "p",
        "dataset": "digits",
        "trigger_index": 3,
        "strategy": "NewDataStrategy",
        "num_samples": 100,
        "manifest_uri": "file:///tmp/m.arrow",
        "manifest_sha256": "ab" * 32,
        "created_at": 11,
    },
    "ModelVersionEvent": {
        "pipeline_id": "p",
        "trigger_index": 3,
        "model_id": "p-3",
        "parent_model_id": "p-2",
        "model_uri": "file:///tmp/model.pt",
        "model_sha256": "cd" * 32,
        "manifest_sha256": "ab" * 32,
        "num_samples": 100,
        "epochs": 2,
        "samples_trained": 150,
        "final_loss": 0.25,
        "trained_samples_uri": "file:///tmp/trained.arrow",
        "trained_samples_sha256": "ef" * 32,
        "timings_s": {"fetch": 0.5, "train": 1.5},
        "created_at": 12,
    },
    "EvaluationEvent": {
        "pipeline_id": "p",
        "model_id": "p-3",
        "trigger_index": 3,
        "dataset": "digits",
        "window_start": 0,
        "window_end": 86_400_000,
        "metric": "Accuracy(top1)",
        "value": 0.875,
        "num_samples": 64,
        "created_at": 13,
    },
    "TriggerEvaluation": {
        "pipeline_id": "p",
        "evaluation_index": 4,
        "boundary_event_time": 1000,
        "boundary_key": "k",
        "phase": "detection",
        "fired": False,
        "trigger_index": None,
        "model_trigger_index": 1,
        "reference_samples": 200,
        "current_samples": 150,
        "results": [],
        "skipped_keys": ["bad"],
        "state": "{}",
        "evaluated_at": 2000,
    },
    "PipelineEvent": {
        "pipeline_id": "p",
        "name": "digits-drift",
        "status": "STARTED",
        "config_json": "{}",
        "config_sha256": None,
        "message": None,
        "at": 14,
    },
}


class FakeRegistry:
    """Stands in for a Schema Registry (an HTTP service, not Kafka or a database) in unit tests."""

    def __init__(self):
        self.by_id: dict[int, str] = {}
        self.subjects: dict[str, int] = {}

    def register_schema(self, subject_name, schema):
        for schema_id, text in self.by_id.items():
            if text == schema.schema_str:
                self.subjects[subject_name] = schema_id
                return schema_id
        schema_id = len(self.by_id) + 100
        self.by_id[schema_id] = schema.schema_str
        self.subjects[subject_name] = schema_id
        return schema_id

    def get_schema(self, schema_id):
        if schema_id not in self.by_id:
            raise LookupError(f"Schema {schema_id} not found")
        return type("Registered", (), {"schema_str": self.by_id[schema_id]})()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_single_object_round_trip(name):
    codec = EventCodec()
    data = codec.encode(name, SAMPLES[name])
    assert data[:2] == SINGLE_OBJECT_MAGIC
    assert data[2:10] == codec.schemas.get(name).fingerprint
    assert codec.decode(data) == (name, SAMPLES[name])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_confluent_wire_format_round_trip(name):
    registry = FakeRegistry()
    writer = EventCodec(registry=registry)
    data = writer.encode(name, SAMPLES[name])
    (magic, schema_id) = struct.unpack(">bI", data[:5])
    assert magic == 0 and registry.subjects[f"modyn_stream.events.{name}"] == schema_id
    # A fresh reader knows the schema only through the registry.
    reader = EventCodec(schemas=SchemaSet.load(), registry=registry)
    assert reader.decode(data) == (name, SAMPLES[name])


def test_reader_detects_framing_per_message():
    registry = FakeRegistry()
    codec = EventCodec(registry=registry)
    confluent = codec.encode("TriggerEvent", SAMPLES["TriggerEvent"])
    single = EventCodec().encode("TriggerEvent", SAMPLES["TriggerEvent"])
    assert codec.decode(confluent) == codec.decode(single)


def test_defaults_fill_optional_fields():
    event = EventCodec().decode(
        EventCodec().encode("SampleEvent", {"dataset": "d", "key": "k", "event_time": 1, "payload_uri": "s3://b/k"})
    )
    assert event.record["label"] is None and event.record["attributes"] == {}


def test_encode_rejects_records_that_do_not_match_the_schema():
    with pytest.raises(EventEncodeError, match="SampleEvent: record does not match schema"):
        EventCodec().encode("SampleEvent", {"dataset": "d", "key": "k", "event_time": "yesterday"})


def _older_sample_schema() -> dict:
    """SampleEvent as it might have been before `content_type` and `attributes` were added."""
    raw = json.loads(EventCodec().schemas.get("SampleEvent").json)
    raw["fields"] = [f for f in raw["fields"] if f["name"] not in ("content_type", "attributes")]
    return raw


def test_older_writer_schema_resolves_against_current_reader(tmp_path):
    old = AvroSchema.from_json(_older_sample_schema())
    schemas = SchemaSet.load()
    schemas.add_writer(old)
    old_writer = EventCodec(schemas=SchemaSet([old]))
    data = old_writer.encode("SampleEvent", {"dataset": "d", "key": "k", "event_time": 5, "label": 1, "payload": b"p"})
    event = EventCodec(schemas=schemas).decode(data)
    assert event.record["content_type"] is None and event.record["attributes"] == {}
    assert event.record["payload"] == b"p" and event.record["label"] == 1


def test_history_folder_registers_older_writers(tmp_path):
    schema_dir = tmp_path / "schemas"
    (schema_dir / "history").mkdir(parents=True)
    for name in ("SampleEvent", "EndOfStream"):
        (schema_dir / f"{name}.avsc").write_text(EventCodec().schemas.get(name).json)
    (schema_dir / "history" / "SampleEvent.v1.avsc").write_text(json.dumps(_older_sample_schema()))
    old = EventCodec(schemas=SchemaSet([AvroSchema.from_json(_older_sample_schema())]))
    data = old.encode("SampleEvent", {"dataset": "d", "key": "k", "event_time": 5, "payload": b"p"})
    with pytest.raises(EventDecodeError, match="unknown schema fingerprint"):
        EventCodec().decode(data)  # the project's own history/ does not know this made-up version
    assert EventCodec(schemas=SchemaSet.load(schema_dir)).decode(data).record["key"] == "k"


@pytest.mark.parametrize("name", sorted(p.name for p in (resource_dir("schemas") / "history").glob("*.avsc")))
def test_events_written_by_the_project_s_older_schemas_still_decode(name):
    old = AvroSchema.from_file(resource_dir("schemas") / "history" / name)
    event_name = name.split(".")[0]
    current = {f["name"] for f in json.loads(EventCodec().schemas.get(event_name).json)["fields"]}
    record = {k: v for k, v in SAMPLES[event_name].items() if k in {f["name"] for f in json.loads(old.json)["fields"]}}
    decoded = EventCodec().decode(EventCodec(schemas=SchemaSet([old])).encode(event_name, record)).record
    assert set(decoded) == current and all(decoded[k] == v for k, v in record.items())


def test_newer_writer_with_an_extra_field_is_read_by_the_current_reader():
    newer = json.loads(EventCodec().schemas.get("TriggerEvent").json)
    newer["fields"].append({"name": "priority", "type": "int", "default": 0})
    newer_schema = AvroSchema.from_json(newer)
    data = EventCodec(schemas=SchemaSet([newer_schema])).encode(
        "TriggerEvent", {**SAMPLES["TriggerEvent"], "priority": 3}
    )
    schemas = SchemaSet.load()
    schemas.add_writer(newer_schema)
    assert EventCodec(schemas=schemas).decode(data).record == SAMPLES["TriggerEvent"]


VALID = EventCodec().encode("SampleEvent", SAMPLES["SampleEvent"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty message"),
        (None, "empty message"),
        (b"hello world", "unknown framing: first bytes 6865"),
        (b"\xc3\x01\x00", "truncated single-object header: 3 of 10 bytes"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x00", "unknown schema fingerprint ffffffffffffffff"),
        (VALID[:-3], "SampleEvent: body of .* bytes is not valid Avro"),
        (VALID[:12], "SampleEvent: body of 2 bytes is not valid Avro"),
        (VALID + b"\x00\x01", "SampleEvent: 2 trailing bytes after the record"),
        (b"\x00\x00\x00", "truncated Confluent header"),
        (b"\x00\x00\x00\x00\x07abc", "Confluent wire format \\(schema id 7\\) but no schema registry"),
    ],
)
def test_bad_bytes_raise_one_clear_error(data, message):
    with pytest.raises(EventDecodeError, match=message):
        EventCodec().decode(data)


def test_unknown_registry_id_is_a_decode_error():
    with pytest.raises(EventDecodeError, match="schema id 42: registry lookup failed"):
        EventCodec(registry=FakeRegistry()).decode(b"\x00\x00\x00\x00\x2a\x00")


def test_decoded_records_are_independent_copies():
    codec = EventCodec()
    first = codec.decode(VALID).record
    first["attributes"]["x"] = "y"
    assert "x" not in codec.decode(VALID).record["attributes"]
    assert copy.deepcopy(SAMPLES["SampleEvent"]) == codec.decode(VALID).record


def test_settings_choose_the_framing():
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from modyn_stream.kafka.config import KafkaSettings

    assert EventCodec.for_settings(KafkaSettings()).registry is None
    with_registry = EventCodec.for_settings(KafkaSettings(schema_registry_url="http://127.0.0.1:1"))
    assert isinstance(with_registry.registry, SchemaRegistryClient)
