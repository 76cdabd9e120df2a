"""The metadata store on the real ClickHouse engine: migrations, inserts with deduplication, errors."""

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
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


def test_insert_round_trips_every_kind_of_column_the_tables_use(store):
    store.command(
        "CREATE TABLE kinds (i UInt32, at DateTime64(3, 'UTC'), maybe Nullable(DateTime64(3, 'UTC')), "
        "timings Map(String, Float64), value Nullable(Float64), offsets Array(UInt64), done Bool, "
        "name Nullable(String), big UInt64) ENGINE = MergeTree ORDER BY i"
    )
    millis = [1_700_000_000_123, 0, -1, -1_500, -2_208_988_800_000, 253_402_300_799_999]  # to 1900 and 9999
    rows = len(millis)
    columns = {
        "i": list(range(rows)),
        "at": millis,
        "maybe": [None, *millis[1:]],
        "timings": [{"train": 1.5}] + [{}] * (rows - 1),
        "value": [float("nan"), float("inf"), -float("inf"), None, 0.1, np.float32(2.5)],
        "offsets": [[1, 2]] + [[]] * (rows - 1),
        "done": [True, False] * 3,
        "name": [None, 'é"\n\\', "", "a", "b", "c"],
        "big": [2**64 - 1, *np.arange(rows - 1, dtype=np.uint64)],
    }
    assert store.insert("kinds", columns) == rows
    got = store.query(
        "SELECT toUnixTimestamp64Milli(at), toUnixTimestamp64Milli(maybe), timings, value, offsets, done, name, big "
        "FROM kinds ORDER BY i"
    )
    assert [row[0] for row in got] == millis and [row[1] for row in got] == [None, *millis[1:]]
    assert got[0][2:] == ({"train": 1.5}, pytest.approx(float("nan"), nan_ok=True), [1, 2], True, None, 2**64 - 1)
    assert [row[3] for row in got[1:]] == [float("inf"), -float("inf"), None, 0.1, 2.5]
    assert [row[6] for row in got] == columns["name"] and [row[7] for row in got[1:]] == list(range(rows - 1))

    aware = datetime(2024, 1, 1, 2, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    store.insert("kinds", {"i": [99], "at": [datetime(2024, 1, 1)], "maybe": [aware]})  # naive means UTC
    assert store.query("SELECT toUnixTimestamp64Milli(at), toUnixTimestamp64Milli(maybe) FROM kinds WHERE i = 99") == [
        (1_704_067_200_000, 1_704_067_200_123)
    ]


def test_inserting_and_reading_arrow_columns_never_load_pandas(tmp_path):
    """pandas costs 0.4 s to import and the run never uses it: clickhouse-connect's insert and pyarrow's
    to_numpy would load it, so the store and the manifests go around them (in a fresh interpreter here)."""
    script = f"""
import sys
from modyn_stream.metadata import MetadataStore
from modyn_stream.selection.manifest import numeric
store = MetadataStore({f"chdb://{tmp_path / 'ch'}"!r})
store.migrate()
store.insert("evaluations", {{"pipeline_id": ["p"], "model_id": ["p/0"], "trigger_index": [0], "dataset": ["d"],
    "window_start": [0], "window_end": [1000], "metric": ["Accuracy"], "value": [0.5], "num_samples": [3],
    "created_at": [1]}})
with store.arrow_batches("SELECT toUnixTimestamp64Milli(window_end) AS t FROM evaluations") as batches:
    column = next(batches).column("t")
import pyarrow as pa
assert list(numeric(pa.chunked_array([column]))) == [1000]
print("pandas" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False", "pandas was imported"


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
