"""Selection strategies as ClickHouse SQL over `samples`, `triggers` and earlier `training_sets`.

"Data up to trigger j" is one predicate (see migration 3): offset below trigger j's ingest
snapshot and (event_time, key) at or before its boundary. A trigger's own data is the difference
of two such sets, so windows of triggers need no other state. Randomness is a keyed hash of
(pipeline seed, trigger index, sample key): the same inputs give the same set, on any engine
and in any order of evaluation. No per-sample Python runs here: `materialize` builds the set
inside ClickHouse with one INSERT ... SELECT.
"""

from __future__ import annotations

from dataclasses import dataclass

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import CoresetStrategy, FreshnessSamplingStrategy, NewDataStrategy

Strategy = NewDataStrategy | FreshnessSamplingStrategy | CoresetStrategy


class SelectionError(ModynStreamError):
    """A training set that cannot be built (unknown trigger, unsupported option)."""


def _upto(alias: str) -> str:
    return _upto_of(f"{alias}.snapshot_partitions", f"{alias}.snapshot_offsets", f"{alias}.boundary_event_time",
                    f"{alias}.boundary_key")  # fmt: skip


def _upto_of(partitions: str, offsets: str, event_time: str, key: str) -> str:
    return (
        f"(s.kafka_offset < {offsets}[indexOf({partitions}, s.kafka_partition)] "
        f"AND (s.event_time, s.key) <= ({event_time}, {key}))"
    )


def _trigger(alias: str, index_param: str) -> str:
    return (
        f"(SELECT * FROM triggers FINAL WHERE pipeline_id = {{pipeline:String}} "
        f"AND trigger_index = {{{index_param}:UInt32}}) AS {alias}"
    )


@dataclass(frozen=True)
class TrainingSet:
    """Rows in (kafka_partition, kafka_offset) order: what a manifest pins."""

    kafka_partition: list[int]
    kafka_offset: list[int]
    key: list[str]
    label: list[int | None]
    weight: list[float]

    def __len__(self) -> int:
        return len(self.key)


def _data(tail_triggers: int | None, trigger_index: int, prefix: str) -> tuple[str, dict]:
    """SQL of the samples of triggers (i - tail, ..., i), or all up to i when tail is None."""
    sources = [_trigger(f"{prefix}cur", f"{prefix}current")]
    params = {f"{prefix}current": trigger_index}
    predicate = _upto(f"{prefix}cur")
    older = None if tail_triggers is None else trigger_index - tail_triggers - 1
    if older is not None and older >= 0:
        sources.append(_trigger(f"{prefix}old", f"{prefix}older"))
        params[f"{prefix}older"] = older
        predicate += f" AND NOT {_upto(f'{prefix}old')}"
    sql = f"SELECT s.* FROM samples AS s, {', '.join(sources)} WHERE s.dataset = {{dataset:String}} AND {predicate}"
    return sql, params


def selection_sql(
    store: MetadataStore, strategy: Strategy, *, pipeline_id: str, dataset: str, trigger_index: int, seed: int
) -> tuple[str, dict]:
    """SQL (and its parameters) whose rows are the samples of the trigger's training set, in no order."""
    known = store.query(
        "SELECT count() FROM triggers FINAL WHERE pipeline_id = {pipeline:String} AND trigger_index = {i:UInt32}",
        {"pipeline": pipeline_id, "i": trigger_index},
    )
    if known[0][0] == 0:
        raise SelectionError(f"pipeline {pipeline_id}: no trigger {trigger_index} in ClickHouse triggers")
    params = {"pipeline": pipeline_id, "dataset": dataset, "seed": seed, "trigger": trigger_index}
    rank = "sipHash64({seed:Int64}, {trigger:UInt32}, s.key)"
    if isinstance(strategy, FreshnessSamplingStrategy):
        sql, extra = _freshness(strategy, trigger_index, rank)
    else:
        base, extra = _data(strategy.tail_triggers, trigger_index, "")
        sql = (
            _limit(base, strategy, rank) if isinstance(strategy, NewDataStrategy) else _presample(base, strategy, rank)
        )
    return sql, {**params, **extra}


def select(store: MetadataStore, strategy: Strategy, **where) -> TrainingSet:
    """The training set as Python lists (for inspection and tests; services use `materialize`)."""
    sql, params = selection_sql(store, strategy, **where)
    rows = store.query(
        f"SELECT kafka_partition, kafka_offset, key, label FROM ({sql}) ORDER BY kafka_partition, kafka_offset", params
    )
    return TrainingSet(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [1.0] * len(rows)
    )


def materialize(
    store: MetadataStore, strategy: Strategy, *, pipeline_id: str, dataset: str, trigger_index: int, seed: int
) -> int:
    """Write the trigger's set into `training_sets` (replacing a partial earlier attempt); return its size.

    The set never passes through Python, so the selector's memory does not grow with it.
    """
    where = {"pipeline": pipeline_id, "trigger": trigger_index}
    scope = "pipeline_id = {pipeline:String} AND trigger_index = {trigger:UInt32}"
    if store.query(f"SELECT count() FROM training_sets WHERE {scope}", where)[0][0]:
        store.command(f"DELETE FROM training_sets WHERE {scope}", where)  # a retry after a crash mid-way
    sql, params = selection_sql(
        store, strategy, pipeline_id=pipeline_id, dataset=dataset, trigger_index=trigger_index, seed=seed
    )
    store.command(
        "INSERT INTO training_sets (pipeline_id, trigger_index, kafka_partition, kafka_offset, key, label, weight, "
        f"event_time) SELECT {{pipeline:String}}, {{trigger:UInt32}}, kafka_partition, kafka_offset, key, label, 1.0, "
        f"event_time FROM ({sql})",
        params,
    )
    return int(store.query(f"SELECT count() FROM training_sets WHERE {scope}", where)[0][0])


def _limit(base: str, strategy: NewDataStrategy, rank: str) -> str:
    if strategy.limit == -1:
        return base
    if strategy.limit_reset == "lastX":
        return f"SELECT * FROM ({base}) AS s ORDER BY s.event_time DESC, s.key DESC LIMIT {strategy.limit}"
    return f"SELECT * FROM ({base}) AS s ORDER BY {rank} LIMIT {strategy.limit}"


def _presample(base: str, strategy: CoresetStrategy, rank: str) -> str:
    config = strategy.presampling_config
    target = f"toUInt64(floor((SELECT count() FROM ({base})) * {config.ratio} / {config.ratio_max}))"
    if strategy.limit != -1:
        target = f"least({target}, {strategy.limit})"
    if config.strategy == "No":
        return base if strategy.limit == -1 else f"SELECT * FROM ({base}) AS s ORDER BY {rank} LIMIT {strategy.limit}"
    if config.strategy == "Random":
        return f"SELECT * FROM ({base}) AS s ORDER BY {rank} LIMIT {target}"
    if config.strategy == "RandomNoReplacement":
        # Least-used first: no sample is drawn a (k+1)-th time before every candidate was drawn k times.
        uses = (
            "SELECT kafka_partition, kafka_offset, count() AS uses FROM training_sets WHERE pipeline_id = "
            "{pipeline:String} AND trigger_index < {trigger:UInt32} GROUP BY kafka_partition, kafka_offset"
        )
        return (
            f"SELECT s.* FROM ({base}) AS s LEFT JOIN ({uses}) AS u ON s.kafka_partition = u.kafka_partition "
            f"AND s.kafka_offset = u.kafka_offset ORDER BY u.uses, {rank} LIMIT {target}"
        )
    if config.strategy == "LabelBalanced":
        return _balanced(base, "s.label", target, rank)
    if config.strategy == "TriggerBalanced":
        # Each sample's trigger is the first whose "data up to" holds it (those sets are nested).
        bounds = (
            "(SELECT arrayMap(t -> t.2, arraySort(groupArray((trigger_index, (snapshot_partitions, "
            "snapshot_offsets, boundary_event_time, boundary_key))))) FROM triggers FINAL "
            "WHERE pipeline_id = {pipeline:String} AND trigger_index <= {trigger:UInt32})"
        )
        first = f"arrayFirstIndex(b -> {_upto_of('b.1', 'b.2', 'b.3', 'b.4')}, {bounds})"
        return _balanced(base, first, target, rank)
    raise SelectionError(f"presampling strategy {config.strategy} is not implemented")


def _balanced(base: str, group: str, target: str, rank: str) -> str:
    """The same number from every group (fewer where a group has fewer), chosen by the seeded hash."""
    per_group = f"toUInt64(ceil({target} / (SELECT uniqExact({group}) FROM ({base}) AS s)))"
    return (
        f"SELECT * EXCEPT nth FROM (SELECT s.*, row_number() OVER (PARTITION BY {group} ORDER BY {rank}) AS nth "
        f"FROM ({base}) AS s) WHERE nth <= {per_group}"
    )


def _freshness(strategy: FreshnessSamplingStrategy, trigger_index: int, rank: str) -> tuple[str, dict]:
    """`unused_data_ratio` of the set from this trigger's new data, the rest from data trained on before."""
    new, params = _data(0, trigger_index, "new_")
    if trigger_index == 0:
        return new, params
    used, used_params = _data(None, trigger_index - 1, "used_")
    total = str(strategy.limit) if strategy.limit != -1 else f"(SELECT count() FROM ({new}))"
    fresh = f"least((SELECT count() FROM ({new})), toUInt64(round({total} * {strategy.unused_data_ratio})))"
    return (
        f"SELECT * FROM (SELECT * FROM ({new}) AS s ORDER BY {rank} LIMIT {fresh}) "
        f"UNION ALL SELECT * FROM (SELECT * FROM ({used}) AS s ORDER BY {rank} LIMIT toUInt64({total} - {fresh}))",
        {**params, **used_params},
    )
