"""The metadata store on the real ClickHouse engine: migrations, inserts with deduplication, errors."""

import uuid
from datetime import UTC, datetime

import pytest

from modyn_stream.metadata import MetadataError, MetadataStore
from modyn_stream.metadata.migrations import MIGRATIONS
from modyn_stream.metadata.store import redact

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clickhouse_dsn):
    return MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")


def test_migrations_create_every_table_and_reapplying_is_a_no_op(store):
    assert store.migrate() == [m.version for m in MIGRATIONS]
    tables = {row[0] for row in store.query("SHOW TABLES")}
    assert {"samples", "ingest_progress", "pipelines", "triggers", "training_sets", "models", "evaluations"} <= tables
    assert store.migrate() == []
    assert MetadataStore(store.url, store.database).migrate() == [], "a new client finds them applied"
    assert store.schema_version() == MIGRATIONS[-1].version
    assert store.query("SELECT count() FROM schema_migrations") == [(len(MIGRATIONS),)]


def test_samples_insert_is_deduplicated_by_token(store):
    store.migrate()
    t = datetime(2024, 1, 1, tzinfo=UTC)
    columns = {
        "dataset": ["d", "d"],
        "key": ["a", "b"],
        "event_time": [t, t],
        "label": [1, None],
        "topic": ["ns.samples.d"] * 2,
        "kafka_partition": [0, 0],
        "kafka_offset": [0, 1],
        "payload_size": [3, 4],
        "ingested_at": [t, t],
    }
    assert store.insert("samples", columns, dedup_token="ns.samples.d-0-0-1") == 2
    store.insert("samples", columns, dedup_token="ns.samples.d-0-0-1")
    assert store.query("SELECT count(), countIf(label IS NULL) FROM samples") == [(2, 1)]


def test_errors_name_the_problem_without_secrets(store, tmp_path):
    with pytest.raises(MetadataError, match=r"ClickHouse query failed: .*no_such_table"):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(MetadataError, match="invalid ClickHouse database name"):
        MetadataStore(store.url, database="bad-name;")
    with pytest.raises(MetadataError, match=r"ClickHouse at http://u:\*\*\*@127.0.0.1:1: cannot connect"):
        MetadataStore("http://u:secret@127.0.0.1:1")
    with pytest.raises(MetadataError, match="use chdb:///path or http"):
        MetadataStore("ftp://host")


def test_redact_hides_only_the_password():
    assert redact("https://me:pw@ch:8443/") == "https://me:***@ch:8443/"
    assert redact("chdb:///data") == "chdb:///data"
