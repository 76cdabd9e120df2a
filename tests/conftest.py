"""Fixtures giving tests a real Kafka broker and a real ClickHouse engine (see modyn_stream.testing).

Integration tests never skip silently: if no broker can be had, the fixture fails with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.testing import clickhouse_url, kafka_bootstrap


@pytest.fixture(scope="session")
def kafka_bootstrap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        context = kafka_bootstrap(tmp_path_factory.mktemp("kafka"))
        bootstrap, source = context.__enter__()
    except Exception as exc:
        pytest.fail(f"no Kafka broker for the integration tests: {type(exc).__name__}: {exc}", pytrace=False)
    print(f"\nKafka for tests: {bootstrap} ({source})")
    try:
        yield bootstrap
    finally:
        context.__exit__(None, None, None)


@pytest.fixture
def kafka_settings(kafka_bootstrap_server: str) -> KafkaSettings:
    """Settings for the test broker with a namespace of its own, so tests never share topics."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap_server, namespace=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session")
def clickhouse_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with clickhouse_url(tmp_path_factory.mktemp("clickhouse")) as (dsn, source):
        print(f"\nClickHouse for tests: {source}")
        yield dsn
