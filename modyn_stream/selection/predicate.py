"""Training sets stored as the predicate they are, not as their rows.

A set that is the whole of a window of triggers (new data or all data so far, no sampling, no limit)
is fully described by the bounds of two triggers: per partition the offset below which its samples
had been ingested, and the (event_time, key) boundary. The selector stores those bounds with the
set's size and an order-free checksum of its rows (a few hundred bytes, whatever the set's size),
instead of writing every row into `training_sets` and a manifest. The trainer expands the predicate
into the same manifest a materialised set gives, byte for byte: the same rows, in the same
(event_time, key) order, written the same way; it first checks that ClickHouse still gives the
rows the selector counted. The order is the stream's own across partitions, so the expansion sorts
in ClickHouse rather than reading Kafka's partition ranges one after another: the batches, and so
the model, must not depend on how the stream was partitioned.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from modyn_stream.artifacts import ArtifactError
from modyn_stream.metadata import MetadataStore
from modyn_stream.selection.manifest import write_rows

FORMAT = "modyn-stream/training-set-predicate"
VERSION = 1
SUFFIX = ".predicate.json"
NULL_LABEL = -(2**63)  # stands for a missing label where a group or hash needs a value
_CHECKSUM = f"count(), sum(cityHash64(s.kafka_partition, s.kafka_offset, s.key, ifNull(s.label, {NULL_LABEL})))"


@dataclass(frozen=True)
class Bound:
    """The data up to one trigger: offsets ingested per partition, and the (event_time, key) boundary."""

    partitions: list[int]
    offsets: list[int]
    event_time_ms: int
    key: str

    def clause(self, name: str, params: dict) -> str:
        """SQL over `samples AS s` holding exactly the samples up to this bound (its values become params)."""
        params |= {f"{name}_p": self.partitions, f"{name}_o": self.offsets, f"{name}_t": self.event_time_ms,
                   f"{name}_k": self.key}  # fmt: skip
        boundary = f"fromUnixTimestamp64Milli({{{name}_t:Int64}}, 'UTC')"
        return (
            f"(s.kafka_offset < transform(s.kafka_partition, {{{name}_p:Array(UInt32)}}, {{{name}_o:Array(UInt64)}}, "
            f"toUInt64(0)) AND s.event_time <= {boundary} "
            f"AND (s.event_time, s.key) <= ({boundary}, {{{name}_k:String}}))"
        )


def window_clause(
    dataset: str, upto: Bound, after: Bound | None, params: dict, names: tuple[str, str] = ("upto", "after")
) -> str:
    """The samples of `dataset` up to `upto` and past `after` (all up to `upto` when `after` is None); the
    bounds' parameters are named after `names`."""
    params["dataset"] = dataset
    where = f"s.dataset = {{dataset:String}} AND {upto.clause(names[0], params)}"
    return where if after is None else f"{where} AND NOT {after.clause(names[1], params)}"


@dataclass(frozen=True)
class SetPredicate:
    """A training set as a window of the log, with the size and checksum of the rows it denotes."""

    dataset: str
    upto: Bound
    after: Bound | None
    rows: int
    checksum: int

    def where(self) -> tuple[str, dict]:
        params: dict = {}
        return window_clause(self.dataset, self.upto, self.after, params), params


def set_checksum(store: MetadataStore, where: str, params: dict) -> tuple[int, int]:
    """(rows, checksum) of the samples `where` selects; the checksum does not depend on their order."""
    (rows, checksum), = store.query(f"SELECT {_CHECKSUM} FROM samples AS s WHERE {where}", params)  # fmt: skip
    return int(rows), int(checksum)


def predicate_for(store: MetadataStore, dataset: str, upto: Bound, after: Bound | None) -> SetPredicate:
    params: dict = {}
    rows, checksum = set_checksum(store, window_clause(dataset, upto, after, params), params)
    return SetPredicate(dataset, upto, after, rows, checksum)


def write_predicate(predicate: SetPredicate, path: Path) -> None:
    """The predicate as JSON with sorted keys: the same set gives the same bytes, so the same checksum."""
    document = {"format": FORMAT, "version": VERSION, **asdict(predicate)}
    path.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n")


def is_predicate(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def read_predicate(path: Path) -> SetPredicate:
    try:
        document = json.loads(path.read_text())
        if document.get("format") != FORMAT or document.get("version") != VERSION:
            raise ValueError(f"not a version-{VERSION} {FORMAT} file")
        after = document["after"]
        return SetPredicate(
            str(document["dataset"]), Bound(**document["upto"]), None if after is None else Bound(**after),
            int(document["rows"]), int(document["checksum"]),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"training-set predicate {path}: cannot read: {exc}") from None


def expand(store: MetadataStore, predicate: SetPredicate, path: Path, origin: Path) -> int:
    """Write the manifest of the set `predicate` denotes to `path`; return its rows.

    Refused, naming `origin`, when ClickHouse no longer gives the rows the selector counted (samples
    deleted, or a different metadata store): the set could not be rebuilt as it was selected."""
    where, params = predicate.where()
    rows, checksum = set_checksum(store, where, params)
    if (rows, checksum) != (predicate.rows, predicate.checksum):
        raise ArtifactError(
            f"training-set predicate {origin}: ClickHouse now gives {rows} samples with checksum {checksum}, "
            f"the set had {predicate.rows} with checksum {predicate.checksum}"
        )
    sql = (
        "SELECT s.kafka_partition, s.kafka_offset, s.key, s.label, toFloat32(1) AS weight FROM samples AS s "
        f"WHERE {where} ORDER BY s.event_time, s.key"
    )
    return write_rows(store, sql, params, path)
