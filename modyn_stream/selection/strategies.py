"""Selection strategies as ClickHouse SQL over `samples` and the pipeline's `triggers` rows.

"Data up to trigger j" is one predicate (see migration 3): offset below trigger j's ingest
snapshot and (event_time, key) at or before its boundary. A trigger's own data is the difference
of two such sets, so windows of triggers need no other state. Randomness is a keyed hash of
(pipeline seed, trigger index, sample key): the same inputs give the same set, on any engine
and in any order of evaluation. No per-sample Python runs here.
"""

from __future__ import annotations

from dataclasses import dataclass

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import CoresetStrategy, FreshnessSamplingStrategy, NewDataStrategy


class SelectionError(ModynStreamError):
    """A training set that cannot be built (unknown trigger, unsupported option)."""


def _upto(alias: str) -> str:
    return (
        f"(s.kafka_offset < {alias}.snapshot_offsets[indexOf({alias}.snapshot_partitions, s.kafka_partition)] "
        f"AND (s.event_time, s.key) <= ({alias}.boundary_event_time, {alias}.boundary_key))"
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


def select(
    store: MetadataStore,
    strategy: NewDataStrategy | FreshnessSamplingStrategy | CoresetStrategy,
    *,
    pipeline_id: str,
    dataset: str,
    trigger_index: int,
    seed: int,
) -> TrainingSet:
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
    rows = store.query(
        f"SELECT kafka_partition, kafka_offset, key, label FROM ({sql}) ORDER BY kafka_partition, kafka_offset",
        {**params, **extra},
    )
    return TrainingSet(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [1.0] * len(rows)
    )


def _limit(base: str, strategy: NewDataStrategy, rank: str) -> str:
    if strategy.limit == -1:
        return base
    if strategy.limit_reset == "lastX":
        return f"SELECT * FROM ({base}) AS s ORDER BY s.event_time DESC, s.key DESC LIMIT {strategy.limit}"
    return f"SELECT * FROM ({base}) AS s ORDER BY {rank} LIMIT {strategy.limit}"


def _presample(base: str, strategy: CoresetStrategy, rank: str) -> str:
    config = strategy.presampling_config
    target = f"toUInt64(floor((SELECT count() FROM ({base})) * {config.ratio} / {config.ratio_max}))"
    if config.strategy == "No":
        return base if strategy.limit == -1 else f"SELECT * FROM ({base}) AS s ORDER BY {rank} LIMIT {strategy.limit}"
    if config.strategy == "Random":
        return f"SELECT * FROM ({base}) AS s ORDER BY {rank} LIMIT {target}"
    if config.strategy == "LabelBalanced":
        # The same number from every label (fewer where a label has fewer), chosen by the seeded hash.
        per_label = f"toUInt64(ceil({target} / (SELECT uniqExact(label) FROM ({base}))))"
        return (
            f"SELECT * FROM (SELECT s.*, row_number() OVER (PARTITION BY s.label ORDER BY {rank}) AS nth "
            f"FROM ({base}) AS s) WHERE nth <= {per_label}"
        )
    raise SelectionError(f"presampling strategy {config.strategy} is not implemented yet")


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
