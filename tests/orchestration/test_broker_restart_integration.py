"""A broker that goes away for 30 s mid-run: every service resumes by itself, nothing lost, doubled or hung.

These tests stop and restart a broker of their own (a LocalKafka in a temporary directory), never the
session's. The outage lasts longer than every Kafka timeout of the services (30 s), so each call that
waits on the broker fails during it; the point is what the services do then.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modyn_stream.kafka.local import LocalKafka
from tests.orchestration.test_run_integration import manifests, modyn, rows, small_pipeline

pytestmark = pytest.mark.integration
OUTAGE_S = 30  # what an outage lasts here: part of the scenario, not a wait for a condition


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory):
    broker = LocalKafka(tmp_path_factory.mktemp("restarted-kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling a condition another process makes true


def models(run: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run.glob("artifacts/*/models/*.pt"))}


def test_a_run_survives_a_broker_outage_with_the_results_of_an_uninterrupted_run(kafka_settings, own_broker, tmp_path):
    pipeline = small_pipeline(tmp_path)
    reference = modyn("run", str(pipeline), "--runs", str(tmp_path / "calm"),
                      bootstrap=kafka_settings.bootstrap_servers, namespace=kafka_settings.namespace)  # fmt: skip
    assert reference.returncode == 0, reference.stderr[-3000:]

    bootstrap = own_broker.status().bootstrap
    command = [sys.executable, "-m", "modyn_stream", "run", str(pipeline), "--runs", str(tmp_path / "outage"),
               "--bootstrap", bootstrap, "--namespace", "outage"]  # fmt: skip
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        outage = tmp_path / "outage" / "small-digits"
        wait_for(lambda: models(outage) or run.poll() is not None, 120, "the first model")
        assert run.poll() is None, run.communicate()
        own_broker.stop()
        time.sleep(OUTAGE_S)
        own_broker.start()
        stdout, stderr = run.communicate(timeout=240)  # without a human: the run must end by itself
    finally:
        run.kill()
    assert run.returncode == 0, stderr[-3000:]
    assert "small-digits: 3 triggers, 3 models, 3 evaluated" in stdout, stderr[-3000:]
    assert "Kafka went away 1 time(s)" in stdout + stderr

    calm = tmp_path / "calm" / "small-digits"
    for name, columns in [("triggers.csv", ("trigger", "boundary", "new_samples", "training_set")),
                          ("evaluations.csv", ("trigger", "window_start", "metric", "value", "samples"))]:  # fmt: skip
        assert rows(outage / "report" / name, *columns) == rows(calm / "report" / name, *columns), name
    assert manifests(outage) == manifests(calm) and len(manifests(calm)) == 6  # 3 predicates, 3 expanded
    assert models(outage) == models(calm) and len(models(calm)) == 3  # the same bytes: nothing trained twice


def test_a_service_process_rebuilds_itself_after_an_outage_and_stops_cleanly(own_broker, tmp_path):
    # The trigger service exited with rc=1 when the broker went away; a supervisor-less deployment then stopped.
    bootstrap = own_broker.status().bootstrap
    metadata = f"chdb://{tmp_path / 'metadata'}"
    command = [sys.executable, "-m", "modyn_stream", "service", "trigger", "--bootstrap", bootstrap,
               "--namespace", "alone", "--metadata-url", metadata, "--interval", "0.2"]  # fmt: skip
    service = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "metadata").exists() or service.poll() is not None, 60, "the service to start")
        time.sleep(2)  # let it step a few times against the live broker
        own_broker.stop()
        time.sleep(OUTAGE_S)
        assert service.poll() is None, service.communicate()
        own_broker.start()
        time.sleep(5)  # several evaluation intervals against the returned broker
        assert service.poll() is None, service.communicate()
        service.send_signal(signal.SIGTERM)
        _, stderr = service.communicate(timeout=60)
    finally:
        service.kill()
    assert service.returncode == 0, stderr[-3000:]
    assert "restarting once Kafka at" in stderr and "rebuilt after 1 broker outage(s)" in stderr, stderr
    assert "Connection refused" not in stderr  # the reconnect attempts of every client are not shown
