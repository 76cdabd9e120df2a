"""The Maven-provisioned local Kafka: lifecycle, persistence, and use by an independent client (kcat)."""

import os
import shutil
import subprocess
import sys

import pytest

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.exceptions import LocalKafkaError
from modyn_stream.kafka.local import LocalKafka, find_java, provision
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin, TopicSpec
from tests.kafka.test_transactions_integration import read_all

pytestmark = pytest.mark.integration


def cli(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modyn_stream", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
        check=False,
    )


def test_up_down_up_keeps_topics_data_and_address(tmp_path):
    state = tmp_path / "kafka"
    up = cli("kafka", "up", "--state-dir", str(state))
    assert up.returncode == 0, up.stderr
    bootstrap = up.stdout.strip()
    assert bootstrap.startswith("127.0.0.1:")
    try:
        status = cli("kafka", "status", "--state-dir", str(state), "--bootstrap")
        assert status.returncode == 0 and status.stdout.strip() == bootstrap
        assert cli("kafka", "up", "--state-dir", str(state)).stdout.strip() == bootstrap  # already running

        settings = KafkaSettings(bootstrap_servers=bootstrap)
        TopicAdmin(settings).ensure([TopicSpec("keep", 1)])
        with EventProducer(settings) as producer:
            producer.produce("keep", b"survives a restart")

        down = cli("kafka", "down", "--state-dir", str(state))
        assert down.returncode == 0 and "stopped" in down.stderr
        assert cli("kafka", "status", "--state-dir", str(state)).returncode == 1

        again = LocalKafka(state)
        assert again.start() == bootstrap
        assert read_all(settings, "keep") == [b"survives a restart"]
    finally:
        LocalKafka(state).stop()
    assert not LocalKafka(state).status().running


@pytest.mark.skipif(not shutil.which("kcat") and os.environ.get("CI") != "true", reason="kcat not installed")
def test_an_independent_client_round_trips_through_the_local_broker(kafka_bootstrap_server):
    kcat = shutil.which("kcat")
    assert kcat, "CI installs kcat (apt-get install kcat) for this test"
    # Made on purpose: the broker creates no topic on a client's first produce (auto.create.topics.enable=false).
    TopicAdmin(KafkaSettings(bootstrap_servers=kafka_bootstrap_server)).ensure([TopicSpec("kcat-roundtrip", 1)])
    produce = subprocess.run(
        [kcat, "-b", kafka_bootstrap_server, "-t", "kcat-roundtrip", "-P", "-K:"],
        input="k1:hello\nk2:world\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert produce.returncode == 0
    consume = subprocess.run(
        [kcat, "-b", kafka_bootstrap_server, "-t", "kcat-roundtrip", "-C", "-e", "-f", "%k=%s\n"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert consume.stdout.split() == ["k1=hello", "k2=world"]


def test_missing_tools_give_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("MODYN_KAFKA_JARS_DIR", str(tmp_path / "jars"))
    with pytest.raises(LocalKafkaError, match="mvn not found on PATH"):
        provision()
    with pytest.raises(LocalKafkaError, match="java not found"):
        find_java()
