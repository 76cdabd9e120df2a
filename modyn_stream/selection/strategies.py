"""Selection strategies as ClickHouse SQL over `samples` (and, for RandomNoReplacement, `training_sets`).

"Data up to trigger j" is one predicate (see migration 3): offset below trigger j's ingest
snapshot and (event_time, key) at or before its boundary. A trigger's own data is the difference
of two such sets, so windows of triggers need no other state; the trigger rows are read once and
their bounds inlined as query parameters. Randomness is a keyed hash of (pipeline seed, trigger
index, sample key): the same inputs give the same set, on any engine and in any order of
evaluation, however the data is partitioned. No per-sample Python runs here: `materialize`
builds the set inside ClickHouse with one INSERT ... SELECT.

Drawing the k smallest hashes of n rows needs no sort of the rows: one pass collects the hashes
below a threshold that holds k rows with overwhelming probability (k/n plus 7 standard deviations)
and picks the k-th smallest of them; the set is then every row at or below that cut, selected
without ordering (that select takes half as long as a top-k sort of the rows). In the vanishing
case that fewer passed the threshold, or that equal keys tie at the cut, the set is selected by
sorting instead (each plan knows its exact size).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from modyn_stream.exceptions import ModynStreamError
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.schema.selection import CoresetStrategy, FreshnessSamplingStrategy, NewDataStrategy
from modyn_stream.selection.predicate import NULL_LABEL, Bound, window_clause

log = logging.getLogger(__name__)

Strategy = NewDataStrategy | FreshnessSamplingStrategy | CoresetStrategy
COLUMNS = "s.kafka_partition, s.kafka_offset, s.key, s.label, s.event_time"  # what a set keeps
RANK = "cityHash64({seed:Int64}, {trigger:UInt32}, s.key)"
_ALL = 2**64 - 1  # the largest hash


class SelectionError(ModynStreamError):
    """A training set that cannot be built (unknown trigger, unsupported option)."""


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


@dataclass(frozen=True)
class Plan:
    """SQL whose rows are the training set, the number of rows it must give, and its threshold-free twin;
    `window` holds the bounds (up to, past) when the set is the whole of a window of triggers."""

    sql: str
    params: dict
    size: int
    exact_sql: str
    window: tuple[Bound, Bound | None] | None = None


class _Planner:
    """Builds one trigger's selection, reading only counts and trigger rows from ClickHouse."""

    def __init__(self, store: MetadataStore, pipeline_id: str, dataset: str, trigger_index: int, seed: int) -> None:
        self.store = store
        self.index = trigger_index
        self.params: dict = {"pipeline": pipeline_id, "dataset": dataset, "seed": seed, "trigger": trigger_index}
        rows = store.query(
            "SELECT trigger_index, snapshot_partitions, snapshot_offsets, toUnixTimestamp64Milli(boundary_event_time), "
            "boundary_key FROM triggers FINAL WHERE pipeline_id = {pipeline:String} AND trigger_index <= {i:UInt32}",
            {"pipeline": pipeline_id, "i": trigger_index},
        )
        self.bounds = {row[0]: Bound(list(row[1]), list(row[2]), int(row[3]), row[4]) for row in rows}
        self.draws = 0  # hash cuts taken so far (a freshness set takes two)
        if trigger_index not in self.bounds:
            raise SelectionError(f"pipeline {pipeline_id}: no trigger {trigger_index} in ClickHouse triggers")

    def upto(self, j: int) -> str:
        """Samples up to trigger j (its bounds become parameters b{j}_*)."""
        return self.bounds[j].clause(f"b{j}", self.params)

    def window_bounds(self, tail_triggers: int | None, last: int) -> tuple[Bound, Bound | None]:
        """The bounds of the data of triggers (last - tail, ..., last): up to `last`, past the one before."""
        first = _first(tail_triggers, last)
        if first > 0 and first - 1 not in self.bounds:
            raise SelectionError(f"pipeline {self.params['pipeline']}: no trigger {first - 1} in ClickHouse triggers")
        return self.bounds[last], self.bounds[first - 1] if first > 0 else None

    def window(self, tail_triggers: int | None, last: int) -> tuple[str, list[int]]:
        """WHERE clause of the data of triggers (last - tail, ..., last) (all up to `last` when tail is None)."""
        upto, after = self.window_bounds(tail_triggers, last)
        first = _first(tail_triggers, last)
        where = window_clause(self.params["dataset"], upto, after, self.params, (f"b{last}", f"b{first - 1}"))
        return where, list(range(first, last + 1))

    def count(self, where: str, group: str | None = None) -> dict:
        if group is None:
            return {None: self.store.query(f"SELECT count() FROM samples AS s WHERE {where}", self.params)[0][0]}
        rows = self.store.query(f"SELECT {group} AS g, count() FROM samples AS s WHERE {where} GROUP BY g", self.params)
        return dict(rows)

    def smallest(self, where: str, k: int, total: int) -> Plan:
        """The k rows with the smallest hashes among `total` rows."""
        exact = f"SELECT {COLUMNS} FROM samples AS s WHERE {where} ORDER BY {RANK} LIMIT {k}"
        if k >= total:
            full = f"SELECT {COLUMNS} FROM samples AS s WHERE {where}"
            return Plan(full, self.params, total, full)
        if k == 0:
            return Plan(exact, self.params, 0, exact)
        name, self.draws = f"cut{self.draws}", self.draws + 1
        (passed, cut), = self.store.query(
            f"SELECT count(), arrayElement(arraySort(groupArray({RANK})), {k}) FROM samples AS s "
            f"WHERE {where} AND {RANK} < {_threshold(k, total)}",
            self.params,
        )  # fmt: skip
        if passed < k:
            return _missed(exact, self.params, k)
        self.params[name] = cut
        return Plan(f"SELECT {COLUMNS} FROM samples AS s WHERE {where} AND {RANK} <= {{{name}:UInt64}}", self.params,
                    k, exact)  # fmt: skip

    def balanced(self, where: str, group: str, counts: dict, quota: int) -> Plan:
        """`quota` rows from every group (all of a group with fewer), chosen by the seeded hash."""
        if not counts:
            return self.smallest(where, 0, 0)
        keys = sorted(counts)
        size = sum(min(quota, n) for n in counts.values())
        exact = f"SELECT {COLUMNS} FROM samples AS s WHERE {where} ORDER BY {group}, {RANK} LIMIT {quota} BY {group}"
        if quota == 0:
            return Plan(exact, self.params, 0, exact)
        self.params |= {"groups": keys, "thresholds": [_threshold(quota, counts[g]) for g in keys]}
        below = f"{RANK} < transform({group}, {{groups:Array(Int64)}}, {{thresholds:Array(UInt64)}}, toUInt64(0))"
        found = {
            g: (passed, cut)
            for g, passed, cut in self.store.query(
                f"SELECT {group} AS g, count(), arrayElement(arraySort(groupArray({RANK})), {quota}) "
                f"FROM samples AS s WHERE {where} AND {below} GROUP BY g",
                self.params,
            )
        }
        if any(found.get(g, (0, 0))[0] < min(quota, counts[g]) for g in keys):
            return _missed(exact, self.params, size)
        # A group with no more rows than its quota is taken whole.
        self.params["cuts"] = [found[g][1] if counts[g] > quota else _ALL for g in keys]
        cut = f"{RANK} <= transform({group}, {{groups:Array(Int64)}}, {{cuts:Array(UInt64)}}, toUInt64(0))"
        return Plan(f"SELECT {COLUMNS} FROM samples AS s WHERE {where} AND {cut}", self.params, size, exact)


def _first(tail_triggers: int | None, last: int) -> int:
    """The first trigger of a window of `tail_triggers` before `last` (0 for all data so far)."""
    return 0 if tail_triggers is None else max(0, last - tail_triggers)


def fair_share(capacity: int, requests: list[int]) -> int:
    """Modyn's fair share of `capacity` among groups of `requests` rows: the equal share that groups with
    fewer rows leave to the others (water-filling)."""
    remaining = list(requests)
    while remaining:
        share = capacity // len(remaining)
        small = [n for n in remaining if n <= share]
        if not small or len(small) == len(remaining):
            return share
        capacity -= sum(small)
        remaining = [n for n in remaining if n > share]
    return 0


def _balanced(planner: _Planner, where: str, group: str, counts: dict, target: int, config) -> Plan:
    """Class or trigger balancing as Modyn's: each group its fair share; `force_required_target_size` tops up
    to exactly `target` (dropping the latest rows past it), `force_column_balancing` gives every group as many
    as the smallest has."""
    share = fair_share(target, list(counts.values()))
    if config.force_required_target_size and sum(min(n, share) for n in counts.values()) < target:
        plan = planner.balanced(where, group, counts, share + 1)
        order = "ORDER BY event_time, key"  # the same rows whatever the partitioning
        return Plan(f"SELECT * FROM ({plan.sql}) {order} LIMIT {target}", plan.params, min(target, plan.size),
                    f"SELECT * FROM ({plan.exact_sql}) {order} LIMIT {target}")  # fmt: skip
    if config.force_column_balancing and counts:
        share = min(share, *counts.values())
    return planner.balanced(where, group, counts, share)


def _missed(exact: str, params: dict, size: int) -> Plan:
    log.warning("selection: hash threshold kept fewer than %d rows; selecting without it", size)
    return Plan(exact, params, size, exact)


def _threshold(k: int, n: int) -> int:
    """A hash bound that k of n uniform 64-bit hashes fall under, bar a 7-sigma miss."""
    if n == 0 or k >= n:
        return _ALL
    p = k / n
    return min(_ALL, math.ceil((p + 7 * math.sqrt(p * (1 - p) / n) + 1e-12) * 2**64))


def plan_selection(
    store: MetadataStore, strategy: Strategy, *, pipeline_id: str, dataset: str, trigger_index: int, seed: int
) -> Plan:
    """How to select the trigger's training set: SQL over `samples` (rows in no particular order)."""
    planner = _Planner(store, pipeline_id, dataset, trigger_index, seed)
    if isinstance(strategy, FreshnessSamplingStrategy):
        return _freshness(planner, strategy)
    where, triggers = planner.window(strategy.tail_triggers, trigger_index)
    group = None
    if isinstance(strategy, CoresetStrategy) and strategy.presampling_config.strategy == "LabelBalanced":
        group = f"ifNull(s.label, {NULL_LABEL})"
    elif isinstance(strategy, CoresetStrategy) and strategy.presampling_config.strategy == "TriggerBalanced":
        # A sample's trigger is the first in the window whose "data up to" holds it (those sets are nested).
        cases = [f"{planner.upto(j)}, {j}" for j in triggers[:-1]]
        group = f"toInt64(multiIf({', '.join([*cases, str(triggers[-1])])}))" if cases else f"toInt64({triggers[-1]})"
    counts = planner.count(where, group)  # per group when balancing: one pass gives both
    total = sum(counts.values())
    bounds = planner.window_bounds(strategy.tail_triggers, trigger_index)
    if isinstance(strategy, NewDataStrategy):
        k = total if strategy.limit == -1 else min(strategy.limit, total)
        if strategy.limit_reset == "lastX" and k < total:
            sql = f"SELECT {COLUMNS} FROM samples AS s WHERE {where} ORDER BY s.event_time DESC, s.key DESC LIMIT {k}"
            return Plan(sql, planner.params, k, sql)
        plan = planner.smallest(where, k, total)
        return replace(plan, window=bounds) if k >= total else plan
    config = strategy.presampling_config
    if trigger_index < strategy.warmup_triggers:  # Modyn's warmup: the whole window, no presampling
        config = config.model_copy(update={"strategy": "No"})
    target = total if config.strategy == "No" else total * config.ratio // config.ratio_max
    target = target if strategy.limit == -1 else min(strategy.limit, target)
    if config.strategy in ("No", "Random"):
        plan = planner.smallest(where, target, total)
        # RandomNoReplacement counts earlier uses in `training_sets`: its warmup sets are written there too.
        whole = target >= total and strategy.presampling_config.strategy != "RandomNoReplacement"
        return replace(plan, window=bounds) if whole else plan
    if group is not None:
        return _balanced(planner, where, group, counts, target, config)
    if config.strategy == "RandomNoReplacement":
        # Least-used first: no sample is drawn a (k+1)-th time before every candidate was drawn k times.
        uses = (
            "SELECT kafka_partition, kafka_offset, count() AS uses FROM training_sets WHERE pipeline_id = "
            "{pipeline:String} AND trigger_index < {trigger:UInt32} GROUP BY kafka_partition, kafka_offset"
        )
        sql = (
            f"SELECT {COLUMNS} FROM samples AS s LEFT JOIN ({uses}) AS u ON s.kafka_partition = u.kafka_partition "
            f"AND s.kafka_offset = u.kafka_offset WHERE {where} ORDER BY u.uses, {RANK} LIMIT {target}"
        )
        return Plan(sql, planner.params, target, sql)
    raise SelectionError(f"presampling strategy {config.strategy} is not implemented")


def _freshness(planner: _Planner, strategy: FreshnessSamplingStrategy) -> Plan:
    """`unused_data_ratio` percent of the set from this trigger's new data, the rest from data trained on before."""
    new_where, _ = planner.window(0, planner.index)
    new_count = planner.count(new_where)[None]
    total = new_count if strategy.limit == -1 else strategy.limit
    fresh = min(new_count, (total * strategy.unused_data_ratio + 50) // 100)  # rounded half up, in integers
    new = planner.smallest(new_where, fresh, new_count)
    if planner.index == 0:
        return new
    used_where, _ = planner.window(None, planner.index - 1)
    used_count = planner.count(used_where)[None]
    used = planner.smallest(used_where, min(total - fresh, used_count), used_count)
    union = "SELECT * FROM ({}) UNION ALL SELECT * FROM ({})"
    return Plan(
        union.format(new.sql, used.sql),
        planner.params,
        new.size + used.size,
        union.format(new.exact_sql, used.exact_sql),
    )


def _run(plan: Plan, execute: Callable[[str], int]) -> None:
    """Execute the plan; if the hash cut did not give the planned size (ties of equal keys), go exact."""
    if execute(plan.sql) != plan.size:
        log.warning("selection: the hash cut gave other than %d rows; selecting by sorting instead", plan.size)
        execute(plan.exact_sql)


def select(store: MetadataStore, strategy: Strategy, **where) -> TrainingSet:
    """The training set as Python lists (for inspection and tests; services use `materialize`)."""
    plan = plan_selection(store, strategy, **where)
    rows: list[tuple] = []

    def execute(sql: str) -> int:
        columns = "kafka_partition, kafka_offset, key, label"
        rows[:] = store.query(f"SELECT {columns} FROM ({sql}) ORDER BY event_time, key", plan.params)  # as manifests
        return len(rows)

    _run(plan, execute)
    return TrainingSet(
        [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], [1.0] * len(rows)
    )


def materialize(
    store: MetadataStore, strategy: Strategy, *, pipeline_id: str, dataset: str, trigger_index: int, seed: int
) -> int:
    """Write the trigger's set into `training_sets` (replacing an earlier attempt); return its size."""
    plan = plan_selection(
        store, strategy, pipeline_id=pipeline_id, dataset=dataset, trigger_index=trigger_index, seed=seed
    )
    return write_plan(store, plan)


def write_plan(store: MetadataStore, plan: Plan) -> int:
    """Write the planned set into `training_sets` (replacing an earlier attempt); return its size.

    The set never passes through Python, so the selector's memory does not grow with it.
    """
    scope = "pipeline_id = {pipeline:String} AND trigger_index = {trigger:UInt32}"

    def execute(sql: str) -> int:
        if store.query(f"SELECT count() FROM training_sets WHERE {scope}", plan.params)[0][0]:
            store.command(f"DELETE FROM training_sets WHERE {scope}", plan.params)  # a retry, or the exact rerun
        store.command(
            "INSERT INTO training_sets (pipeline_id, trigger_index, kafka_partition, kafka_offset, key, label, "
            "weight, event_time) SELECT {pipeline:String}, {trigger:UInt32}, kafka_partition, kafka_offset, key, "
            f"label, 1.0, event_time FROM ({sql})",
            plan.params,
        )
        return int(store.query(f"SELECT count() FROM training_sets WHERE {scope}", plan.params)[0][0])

    _run(plan, execute)
    return plan.size


def trigger_keys(store: MetadataStore, pipeline_id: str, dataset: str, trigger_index: int) -> list[str]:
    """The keys of the trigger's own data, what arrived since the trigger before it (RHO-Loss draws its holdout
    set from them, as Modyn's selector does)."""
    planner = _Planner(store, pipeline_id, dataset, trigger_index, seed=0)
    where, _ = planner.window(0, trigger_index)
    return [row[0] for row in store.query(f"SELECT s.key FROM samples AS s WHERE {where}", planner.params)]
