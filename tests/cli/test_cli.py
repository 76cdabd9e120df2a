"""The `modyn-stream` command as a user runs it: output, exit codes, one-line errors."""

import json
from pathlib import Path

import pytest

from modyn_stream.events import EventCodec
from tests.events.test_codec import SAMPLES
from tests.kafka.test_local_integration import cli


def test_decode_prints_an_event_as_json(tmp_path):
    path = tmp_path / "event.bin"
    path.write_bytes(EventCodec().encode("TriggerEvent", SAMPLES["TriggerEvent"]))
    result = cli("decode", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"type": "TriggerEvent", **SAMPLES["TriggerEvent"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage!", "not a valid event: unknown framing: first bytes 6761"),
        (EventCodec().encode("SampleEvent", SAMPLES["SampleEvent"])[:-5], "not a valid event: SampleEvent: body of"),
        (None, "cannot read: No such file or directory"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, content, message):
    path = tmp_path / "event.bin"
    if content is not None:
        path.write_bytes(content)
    result = cli("decode", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0], result.stderr


def test_schemas_lists_every_event_type_with_its_fingerprint():
    result = cli("schemas")
    assert result.returncode == 0
    assert len(result.stdout.strip().splitlines()) == 9 and "modyn_stream.events.SampleEvent" in result.stdout


@pytest.mark.parametrize("command", [["demo"], ["kafka", "check"]])
def test_unreachable_broker_stops_with_one_line(command, tmp_path):
    result = cli(*command, "--bootstrap", "127.0.0.1:1", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()
        == ["error: Kafka at 127.0.0.1:1: no broker answered within 10 s (Local: Broker transport failure)"]
        or "no broker answered" in result.stderr
    ), result.stderr


@pytest.mark.integration
def test_kafka_check_round_trips_events(kafka_bootstrap_server):
    result = cli(
        "kafka", "check", "--count", "3000", "--partitions", "2", env={"MODYN_KAFKA_BOOTSTRAP": kafka_bootstrap_server}
    )
    assert result.returncode == 0, result.stderr
    assert "produced 3,000" in result.stdout and "decoded 3,000" in result.stdout
    assert "2 end-of-stream markers, 0 payload mismatches" in result.stdout
    assert "round trip OK" in result.stdout


@pytest.mark.integration
def test_demo_replays_and_ingests_a_drifting_stream(kafka_bootstrap_server, tmp_path):
    env = {"MODYN_KAFKA_BOOTSTRAP": kafka_bootstrap_server, "MODYN_KAFKA_NAMESPACE": "demotest"}
    result = cli("demo", "--samples", "800", "--partitions", "2", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "replayed 800 samples to demotest.samples.digits_" in result.stdout
    assert "global watermark: end of stream" in result.stdout
    assert (tmp_path / ".modyn-stream" / "metadata").is_dir()
    counts = [
        line.split("│")[3].strip() for line in result.stdout.splitlines() if line.startswith("│ ") and "│ yes" in line
    ]
    assert sum(int(c.replace(",", "")) for c in counts) == 800


def test_validate_lists_every_problem_and_fails(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("pipeline: {name: x}\ntrigger: {id: DataAmountTrigger, num_samples: -5}\n")
    result = cli("validate", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert f"{path}: trigger.num_samples: Input should be greater than or equal to 1, got -5" in lines
    assert lines[-1] == f"{path}: 5 problem(s)" and len(lines) == 6


def test_validate_accepts_the_examples():
    result = cli("validate", "examples/tabular_drift.yaml", cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0 and "OK" in result.stdout and "tabular-drift-" in result.stdout


def test_services_read_the_system_config_and_options_override_it(tmp_path):
    system = tmp_path / "system.yaml"
    system.write_text(f"metadata: {{url: 'chdb://{tmp_path / 'meta'}', database: fromfile}}\n")
    command = ("service", "evaluator", "--after-pipeline", "nope", "--config", str(system))
    result = cli(*command)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: pipeline nope is not registered in ClickHouse database fromfile"
    result = cli(*command, "--database", "given")
    assert result.stderr.strip() == "error: pipeline nope is not registered in ClickHouse database given"


def test_validate_register_never_prints_the_clickhouse_password(tmp_path):
    system = tmp_path / "system.yaml"
    system.write_text("metadata: {url: 'http://user:s3cret-pw@127.0.0.1:1'}\n")
    example = Path(__file__).resolve().parents[2] / "examples" / "digits_data_amount.yaml"
    result = cli("validate", str(example), "--register", "--config", str(system))
    assert result.returncode != 0 and "s3cret-pw" not in result.stdout + result.stderr
    assert "user:***@127.0.0.1:1" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_pipeline_file_that_is_not_utf8_gives_one_line_not_a_traceback(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "digits_data_amount.yaml"
    path = tmp_path / "latin1.yaml"
    path.write_bytes(example.read_bytes().replace(b"digits-data-amount", "digits-caf\xe9".encode("latin-1")))
    result = cli("validate", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    byte = example.read_bytes().index(b"digits-data-amount") + len("digits-caf")
    assert result.stderr.splitlines()[0] == f"{path}: line 3: not UTF-8 text (byte {byte})"
