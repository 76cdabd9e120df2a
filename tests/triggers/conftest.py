import uuid

import pytest

from modyn_stream.metadata import MetadataStore


@pytest.fixture
def store(clickhouse_dsn):
    """A ClickHouse database of its own for each test."""
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    store.migrate()
    return store
