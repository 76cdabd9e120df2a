"""replay, datasets, tail and topics as a user runs them."""

import json
import uuid

import pytest

from modyn_stream.events import EventCodec
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicSpec
from tests.kafka.test_local_integration import cli


def test_malformed_input_stops_with_one_line_before_publishing(tmp_path):
    (tmp_path / "d.csv").write_text("a,label\n1,0\n2,zero\n")
    # An unreachable broker too: the input is checked first, so the input error is what is reported.
    result = cli("replay", str(tmp_path / "d.csv"), "-d", "x", "-f", "csv", "--label-column", "label",
                 "--bootstrap", "127.0.0.1:1")  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'd.csv'}: line 3: label 'zero' is not an integer"
    )


def test_generate_writes_a_replayable_npz(tmp_path):
    result = cli("datasets", "generate", "tabular-drift", str(tmp_path / "t.npz"), "--samples", "100")
    assert result.returncode == 0 and "wrote 100 samples of tabular-drift" in result.stdout
    bad = cli("datasets", "generate", "nope", str(tmp_path / "n.npz"))
    assert bad.returncode == 1 and "unknown built-in dataset 'nope'" in bad.stderr


@pytest.mark.integration
def test_replay_then_tail_and_topics(kafka_bootstrap_server, tmp_path):
    # A namespace of its own: tmp_path's name repeats from one test session to the next, and a broker may outlive them.
    env = {"MODYN_KAFKA_BOOTSTRAP": kafka_bootstrap_server, "MODYN_KAFKA_NAMESPACE": f"c{uuid.uuid4().hex[:6]}"}
    namespace = env["MODYN_KAFKA_NAMESPACE"]
    cli("datasets", "generate", "digits-drift", str(tmp_path / "d.npz"), "--samples", "200")
    result = cli("replay", str(tmp_path / "d.npz"), "-d", "digits", "--timestamps", "field", "--t-key", "t",
                 "--partitions", "2", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"published 200 samples to {namespace}.samples.digits" in result.stdout

    tail = cli("tail", f"{namespace}.samples.digits", "--from-beginning", "--json", env=env)
    entries = [json.loads(line) for line in tail.stdout.splitlines()]
    assert len(entries) == 202 and sum(e["type"] == "EndOfStream" for e in entries) == 2
    sample = next(e for e in entries if e["type"] == "SampleEvent")
    assert sample["record"]["content_type"] == "application/x-ndarray;dtype=|u1;shape=8,8"

    last = cli("tail", f"{namespace}.samples.digits", "--last", "1", env=env)
    assert [line.split()[1] for line in last.stdout.splitlines()] == ["EndOfStream", "EndOfStream"]
    # Starting at the end of non-empty partitions: nothing to show, and it returns (it used to hang).
    nothing = cli("tail", f"{namespace}.samples.digits", "--last", "0", env=env)
    assert nothing.returncode == 0 and nothing.stdout == ""

    topics = cli("topics", env=env)
    assert f"{namespace}.samples.digits" in topics.stdout and "202" in topics.stdout


@pytest.mark.integration
def test_tail_shows_bytes_that_are_not_events_and_keeps_going(kafka_settings):
    topic = f"{kafka_settings.namespace}.mixed"
    TopicAdmin(kafka_settings).ensure([TopicSpec(topic, 1)])
    with EventProducer(kafka_settings) as producer:
        producer.produce(topic, b"not avro", key="k1")
        producer.produce(topic, EventCodec().encode("SampleEvent", {"dataset": "d", "key": "k2", "event_time": 0,
                                                                    "payload": b"x"}))  # fmt: skip
    env = {"MODYN_KAFKA_BOOTSTRAP": kafka_settings.bootstrap_servers}
    lines = cli("tail", topic, "--from-beginning", env=env).stdout.splitlines()
    assert lines[0].startswith(f"{topic}[0]@0 <not an event: unknown framing") and "key=k1" in lines[0]
    assert lines[1].startswith(f"{topic}[0]@1 SampleEvent dataset=d key=k2 event_time=1970-01-01T00:00:00.000Z")
