import pytest

from modyn_stream.ingest.samples import SampleRows, invalid_reason

GOOD = {"dataset": "d", "key": "k", "event_time": 5, "label": 1, "payload": b"abc", "payload_uri": None}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"dataset": "other"}, "dataset 'other' does not match the topic's dataset 'd'"),
        ({"key": ""}, "key must be 1-1024 characters, got 0"),
        ({"event_time": -3_000_000_000_000}, "outside 1900-01-01..2300-01-01"),
        ({"payload": None}, "neither payload nor payload_uri is set"),
    ],
)
def test_invalid_samples_are_explained(change, reason):
    assert reason in invalid_reason({**GOOD, **change}, "d")


def test_valid_samples_pass_and_become_rows():
    assert invalid_reason(GOOD, "d") is None
    assert invalid_reason({**GOOD, "payload": None, "payload_uri": "s3://b/k"}, "d") is None
    rows = SampleRows()
    rows.append(GOOD, "ns.samples.d", 2, 7)
    columns = rows.columns(ingested_at=99)
    assert columns["payload_size"] == [3] and columns["kafka_offset"] == [7] and columns["ingested_at"] == [99]
