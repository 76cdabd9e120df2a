import json

import pytest

from modyn_stream._resources import resource_dir
from modyn_stream.events import AvroSchema, SchemaError, SchemaSet, default_schemas

EXPECTED = {
    "SampleEvent",
    "EndOfStream",
    "IngestProgress",
    "TriggerEvent",
    "TriggerEvaluation",
    "TrainingSetEvent",
    "ModelVersionEvent",
    "EvaluationEvent",
    "PipelineEvent",
}


def test_every_event_of_the_design_has_a_schema_file_named_after_its_record():
    schemas = default_schemas()
    assert set(schemas.names()) == EXPECTED
    for path in resource_dir("schemas").glob("*.avsc"):
        assert json.loads(path.read_text())["name"] == path.stem


def test_fingerprint_matches_the_avro_spec_test_vector():
    # The Avro specification gives fingerprint64("null") = 0x63dd24e7cc258f8a; framing stores it little-endian.
    schema = AvroSchema.from_json({"type": "record", "name": "N", "fields": []})
    assert len(schema.fingerprint) == 8
    import fastavro.schema

    assert fastavro.schema.fingerprint('"null"', "CRC-64-AVRO") == "8a8f25cce724dd63"


def test_timestamps_are_documented_as_logical_types_but_decoded_as_integers():
    raw = json.loads((resource_dir("schemas") / "SampleEvent.avsc").read_text())
    event_time = next(f for f in raw["fields"] if f["name"] == "event_time")
    assert event_time["type"]["logicalType"] == "timestamp-millis"
    assert "logicalType" not in json.dumps(default_schemas().get("SampleEvent").parsed)


def test_unknown_event_type_names_the_known_ones():
    with pytest.raises(SchemaError, match=r"unknown event type 'Nope' \(known: EndOfStream"):
        default_schemas().get("Nope")


def test_schema_problems_are_reported_with_the_file(tmp_path):
    (tmp_path / "Bad.avsc").write_text("{not json")
    with pytest.raises(SchemaError, match=r"Bad.avsc: not a valid Avro schema"):
        SchemaSet.load(tmp_path)
    (tmp_path / "Bad.avsc").unlink()
    with pytest.raises(SchemaError, match=r"no \*\.avsc schema files"):
        SchemaSet.load(tmp_path)


def test_writer_schema_without_a_current_schema_is_rejected():
    schemas = default_schemas()
    stray = AvroSchema.from_json({"type": "record", "name": "Stray", "fields": []})
    with pytest.raises(SchemaError, match="Stray has no current schema"):
        schemas.add_writer(stray)
