"""Finding real infrastructure for tests: a Kafka broker and a ClickHouse engine.

Order for Kafka: `MODYN_KAFKA_BOOTSTRAP`; else testcontainers' Kafka if a Docker daemon answers;
else the local Maven-provisioned Kafka. Order for ClickHouse: `MODYN_CLICKHOUSE_URL`; else
testcontainers' ClickHouse if Docker answers; else chDB in a directory. Nothing here mocks.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def docker_available() -> bool:
    """Whether a Docker daemon answers (the client alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:
        return False


@contextmanager
def kafka_bootstrap(state_dir: Path) -> Iterator[tuple[str, str]]:
    """Yield (bootstrap address, where it came from); raise with the reason if no broker can be had."""
    if os.environ.get("MODYN_KAFKA_BOOTSTRAP"):
        yield os.environ["MODYN_KAFKA_BOOTSTRAP"], "MODYN_KAFKA_BOOTSTRAP"
        return
    if docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server(), "testcontainers Kafka"
        return
    from modyn_stream.kafka.local import LocalKafka

    broker = LocalKafka(state_dir)
    try:
        yield broker.start(), f"local Kafka in {state_dir}"
    finally:
        broker.stop()


@contextmanager
def clickhouse_url(data_dir: Path) -> Iterator[tuple[str, str]]:
    """Yield (clickhouse-connect DSN, where it came from)."""
    if os.environ.get("MODYN_CLICKHOUSE_URL"):
        yield os.environ["MODYN_CLICKHOUSE_URL"], "MODYN_CLICKHOUSE_URL"
        return
    if docker_available():
        from testcontainers.clickhouse import ClickHouseContainer

        with ClickHouseContainer() as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(8123)
            yield f"http://{container.username}:{container.password}@{host}:{port}", "testcontainers ClickHouse"
        return
    yield f"chdb://{data_dir}", "chDB (embedded)"
