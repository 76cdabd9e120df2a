"""The metadata store: clickhouse-connect against chDB (`chdb:///path`) or a server (`http(s)://...`).

One SQL dialect and one code path for both. Credentials come from the URL or from
`MODYN_CLICKHOUSE_USER` / `MODYN_CLICKHOUSE_PASSWORD`, and never appear in messages.
A chDB engine serves one directory per process; every store in the process must use the same
path (each may use its own database).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
import numpy as np
from clickhouse_connect.driver.exceptions import ClickHouseError

from modyn_stream.metadata.exceptions import MetadataError
from modyn_stream.metadata.migrations import MIGRATIONS

_DATABASE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_URL_ENV = "MODYN_CLICKHOUSE_URL"
DEFAULT_STATE_DIR = Path(".modyn-stream")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def embedded_url(state_dir: Path = DEFAULT_STATE_DIR) -> str:
    """The embedded engine's URL: chDB persisted in `<state_dir>/metadata`."""
    return f"chdb://{(Path(state_dir) / 'metadata').resolve()}"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


class MetadataStore:
    """Thread-safe access to one database of a ClickHouse engine."""

    def __init__(self, url: str, database: str = "modyn") -> None:
        if not _DATABASE.match(database):
            raise MetadataError(f"invalid ClickHouse database name {database!r}")
        self.url = url
        self.database = database
        self._lock = threading.RLock()
        self._migrated = False
        self._datetimes: dict[str, set[str]] = {}  # table -> its DateTime64 columns
        self._client = self._connect(url, database)

    @classmethod
    def from_env(cls, state_dir: Path = DEFAULT_STATE_DIR, database: str = "modyn") -> MetadataStore:
        """`$MODYN_CLICKHOUSE_URL`, else the embedded engine in the state dir."""
        return cls(os.environ.get(DEFAULT_URL_ENV) or embedded_url(state_dir), database)

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb:")

    @property
    def display_url(self) -> str:
        """The URL for messages and logs: without its password."""
        return redact(self.url)

    def _connect(self, url: str, database: str):
        try:
            if url.startswith("chdb:"):
                path = url.removeprefix("chdb://")
                if path.startswith("/"):
                    Path(path).mkdir(parents=True, exist_ok=True)
                bootstrap = clickhouse_connect.get_client(dsn=url)
                bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {database}")
                return clickhouse_connect.get_client(dsn=url, database=database)
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https"):
                raise MetadataError(f"metadata URL {redact(url)}: use chdb:///path or http(s)://host:8123")
            credentials = {
                "username": parts.username or os.environ.get("MODYN_CLICKHOUSE_USER") or "default",
                "password": parts.password or os.environ.get("MODYN_CLICKHOUSE_PASSWORD") or "",
            }
            server = dict(host=parts.hostname, port=parts.port, secure=parts.scheme == "https", **credentials)
            clickhouse_connect.get_client(**server).command(f"CREATE DATABASE IF NOT EXISTS {database}")
            return clickhouse_connect.get_client(**server, database=database)
        except MetadataError:
            raise
        except Exception as exc:
            raise MetadataError(f"ClickHouse at {redact(url)}: cannot connect: {_first_line(exc)}") from None

    # -- statements ---------------------------------------------------------------------------

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None, settings: dict | None = None) -> Any:
        with self._lock:
            try:
                return self._client.command(sql, parameters=parameters, settings=settings)
            except ClickHouseError as exc:
                raise MetadataError(f"ClickHouse statement failed: {_first_line(exc)}") from None

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple]:
        with self._lock:
            try:
                return self._client.query(sql, parameters=parameters).result_rows
            except ClickHouseError as exc:
                raise MetadataError(f"ClickHouse query failed: {_first_line(exc)}") from None

    @contextmanager
    def arrow_batches(
        self, sql: str, parameters: Mapping[str, Any] | None = None, settings: dict | None = None
    ) -> Iterator[Iterator[Any]]:
        """Stream a result as pyarrow record batches (one per ClickHouse block), holding the store meanwhile."""
        with self._lock:
            try:
                with self._client.query_arrow_stream(
                    sql, parameters=parameters, settings=settings, use_strings=True
                ) as stream:
                    yield iter(stream)
            except ClickHouseError as exc:
                raise MetadataError(f"ClickHouse query failed: {_first_line(exc)}") from None

    def insert(self, table: str, columns: Mapping[str, Sequence], dedup_token: str | None = None) -> int:
        """Insert column-oriented data in one block and return its rows; with a token, a repeated insert is
        dropped by ClickHouse.

        Sent as JSON rows rather than through clickhouse-connect's `insert`, which imports pandas on first
        use (0.4 s, to ask whether the data is a DataFrame) and describes the table on every call. A
        DateTime64 column takes epoch milliseconds or datetimes, as clickhouse-connect's did."""
        names = list(columns)
        times = self._datetime_columns(table) & set(names)
        rows = [dict(zip(names, row, strict=True)) for row in zip(*(columns[n] for n in names), strict=True)]
        for row in rows:
            for name in times:
                row[name] = _datetime_seconds(row[name])
        data = "\n".join(json.dumps(row, default=_scalar) for row in rows).encode()
        settings = {"insert_deduplication_token": dedup_token, "insert_deduplicate": 1} if dedup_token else None
        with self._lock:
            try:
                self._client.raw_insert(table, names, data, settings=settings, fmt="JSONEachRow")
            except ClickHouseError as exc:
                raise MetadataError(f"insert into {table} failed: {_first_line(exc)}") from None
        return len(rows)

    def _datetime_columns(self, table: str) -> set[str]:
        """The table's DateTime64 columns (JSON numbers would be read as seconds), asked once per table."""
        if table not in self._datetimes:
            described = self.query(f"DESCRIBE TABLE {table}")
            self._datetimes[table] = {row[0] for row in described if "DateTime64" in row[1]}
        return self._datetimes[table]

    def insert_avro(self, table: str, columns: Sequence[str], data: bytes, dedup_token: str | None = None) -> None:
        """Insert an Avro object container; ClickHouse parses it (and runs the table's views) in one insert."""
        settings = {"deduplicate_blocks_in_dependent_materialized_views": 1}
        if dedup_token:
            settings |= {"insert_deduplication_token": dedup_token, "insert_deduplicate": 1}
        with self._lock:
            try:
                self._client.raw_insert(table, list(columns), data, settings=settings, fmt="Avro")
            except ClickHouseError as exc:
                raise MetadataError(f"insert into {table} failed: {_first_line(exc)}") from None

    # -- migrations ---------------------------------------------------------------------------

    def migrate(self) -> list[int]:
        """Apply pending migrations in order; return the versions applied (empty when up to date).

        Every service migrates the store it is given; after the first, this store knows it is done."""
        if self._migrated:
            return []
        self.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
            "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
        )
        done = {row[0] for row in self.query("SELECT version FROM schema_migrations")}
        applied = []
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            for statement in migration.statements:
                self.command(statement)
            self.insert("schema_migrations", {"version": [migration.version], "name": [migration.name]})
            applied.append(migration.version)
        self._migrated = True
        self._datetimes.clear()  # a migration may have added columns
        return applied

    def schema_version(self) -> int:
        rows = self.query("SELECT max(version) FROM schema_migrations")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        with self._lock:
            self._client.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _scalar(value: Any) -> Any:
    """NumPy scalars as the Python numbers json writes."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot insert a {type(value).__name__} into ClickHouse")


def _datetime_seconds(value: int | datetime | None) -> float | None:
    """A DateTime64 value as ClickHouse reads it from a JSON number: epoch seconds, milliseconds after the point.

    Within DateTime64's range (to 2299) a millisecond count has at most 14 digits, so the float's shortest
    form (what json writes) is exactly `seconds.mmm`."""
    if value is None:
        return None
    if isinstance(value, datetime):  # whole milliseconds, exactly (floor, as the ticks of DateTime64(3))
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
        value //= timedelta(milliseconds=1)
    return int(value) / 1000
