"""The test ClickHouse engine is real: MergeTree tables, inserts, and insert deduplication by token."""

import uuid
from datetime import UTC, datetime

import clickhouse_connect
import pytest

pytestmark = pytest.mark.integration


def test_engine_runs_mergetree_with_insert_deduplication(clickhouse_dsn):
    client = clickhouse_connect.get_client(dsn=clickhouse_dsn)
    table = f"smoke_{uuid.uuid4().hex[:8]}"
    client.command(
        f"CREATE TABLE {table} (k String, t DateTime64(3)) ENGINE = MergeTree ORDER BY (t, k) "
        "SETTINGS non_replicated_deduplication_window = 1000"
    )
    rows = [["a", datetime(2024, 1, 1, tzinfo=UTC)], ["b", datetime(2024, 1, 2, tzinfo=UTC)]]
    token = {"insert_deduplication_token": "samples-0-0-1"}
    client.insert(table, rows, column_names=["k", "t"], settings=token)
    client.insert(table, rows[:1], column_names=["k", "t"], settings=token)  # same token: dropped
    assert client.query(f"SELECT count() FROM {table}").result_rows == [(2,)]
    client.insert(table, rows, column_names=["k", "t"], settings={"insert_deduplication_token": "samples-0-2-3"})
    assert client.query(f"SELECT count() FROM {table}").result_rows == [(4,)]
    client.command(f"DROP TABLE {table}")
