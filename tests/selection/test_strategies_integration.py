"""Selection strategies on the real ClickHouse engine, checked against their definitions."""

import uuid

import pytest

from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.schema.selection import CoresetStrategy, FreshnessSamplingStrategy, NewDataStrategy
from modyn_stream.selection.strategies import SelectionError, materialize, select

pytestmark = pytest.mark.integration

LABELS = [0 if i < 60 else i % 3 + 1 for i in range(100)]


@pytest.fixture(scope="module")
def store(clickhouse_dsn):
    """100 samples (k000..k099, one every 10 ms, two partitions) and four triggers of pipeline 'p'."""
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    store.migrate()
    rows = [(f"k{i:03d}", i * 10, LABELS[i], i % 2, i // 2) for i in range(100)]
    rows.append(("late", 5, 0, 0, 50))  # arrives after trigger 2's snapshot, sorts before everything
    store.insert("samples", {
        "dataset": ["d"] * len(rows), "key": [r[0] for r in rows], "event_time": [r[1] for r in rows],
        "label": [r[2] for r in rows], "topic": ["ns.samples.d"] * len(rows),
        "kafka_partition": [r[3] for r in rows], "kafka_offset": [r[4] for r in rows],
        "payload_size": [1] * len(rows), "ingested_at": [0] * len(rows),
    })  # fmt: skip
    triggers = [(290, "k029", [15, 15]), (590, "k059", [30, 30]), (990, "k099", [50, 50]), (990, "k099", [51, 50])]
    store.insert("triggers", {
        "pipeline_id": ["p"] * 4, "trigger_index": [0, 1, 2, 3], "dataset": ["d"] * 4,
        "boundary_event_time": [t[0] for t in triggers], "boundary_key": [t[1] for t in triggers],
        "num_new_samples": [30, 30, 40, 1], "reason": ["test"] * 4, "fired_at": [0] * 4,
        "snapshot_partitions": [[0, 1]] * 4, "snapshot_offsets": [t[2] for t in triggers], "watermark": [None] * 4,
    })  # fmt: skip
    return store


def keys(store, strategy, trigger, seed=0):
    result = select(store, strategy, pipeline_id="p", dataset="d", trigger_index=trigger, seed=seed)
    times = {"late": 5} | {f"k{i:03d}": i * 10 for i in range(100)}
    assert result.key == sorted(result.key, key=lambda k: (times[k], k)), "in (event_time, key) order, as manifests"
    assert result.weight == [1.0] * len(result)
    return result.key


def k(*indices):
    return {f"k{i:03d}" for i in indices}


@pytest.mark.parametrize(
    ("tail", "trigger", "expected"),
    [
        (None, 0, k(*range(30))),
        (None, 1, k(*range(60))),
        (0, 1, k(*range(30, 60))),
        (1, 2, k(*range(30, 100))),
        (0, 3, {"late"}),  # a late sample belongs to the next trigger
        (None, 3, k(*range(100)) | {"late"}),
    ],
)
def test_new_data_windows_of_triggers(store, tail, trigger, expected):
    assert set(keys(store, NewDataStrategy(name="NewDataStrategy", tail_triggers=tail), trigger)) == expected


def test_limit_keeps_the_latest_or_a_seeded_uniform_sample(store):
    last = NewDataStrategy(name="NewDataStrategy", limit=10, limit_reset="lastX")
    assert set(keys(store, last, 2)) == k(*range(90, 100))
    uar = NewDataStrategy(name="NewDataStrategy", limit=10, limit_reset="sampleUAR")
    first, again, other = keys(store, uar, 2, seed=1), keys(store, uar, 2, seed=1), keys(store, uar, 2, seed=2)
    assert len(first) == 10 and first == again and set(first) <= k(*range(100)) and first != other


def test_coreset_random_and_label_balanced_presampling(store):
    random = CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "Random", "ratio": 50})
    chosen = keys(store, random, 2, seed=3)
    assert len(chosen) == 50 and len(set(chosen)) == 50 and set(chosen) <= k(*range(100))
    balanced = CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "LabelBalanced", "ratio": 40})
    chosen = keys(store, balanced, 2, seed=3)
    per_label = {label: sum(LABELS[int(key[1:])] == label for key in chosen) for label in range(4)}
    assert per_label == {0: 10, 1: 10, 2: 10, 3: 10}
    per_mille = CoresetStrategy(name="CoresetStrategy",
                                presampling_config={"strategy": "Random", "ratio": 125, "ratio_max": 1000})  # fmt: skip
    assert len(keys(store, per_mille, 2, seed=3)) == 12  # Modyn's ratios: 125 of 1000 of 100 samples


def test_freshness_mixes_unused_and_used_data(store):
    strategy = FreshnessSamplingStrategy(name="FreshnessSamplingStrategy", unused_data_ratio=50, limit=20)
    chosen = keys(store, strategy, 2, seed=4)
    assert len(chosen) == 20
    assert len(set(chosen) & k(*range(60, 100))) == 10 and len(set(chosen) & k(*range(60))) == 10


def test_trigger_balanced_takes_the_same_number_from_every_trigger(store):
    def per_trigger(chosen):
        counts = {}
        for key in chosen:
            trigger = 3 if key == "late" else int(key[1:]) // 30 if int(key[1:]) < 60 else 2
            counts[trigger] = counts.get(trigger, 0) + 1
        return counts

    balanced = CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "TriggerBalanced", "ratio": 30})
    assert per_trigger(keys(store, balanced, 2, seed=5)) == {0: 10, 1: 10, 2: 10}
    balanced = CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "TriggerBalanced", "ratio": 40})
    # Modyn's fair share: trigger 3 has one sample, so the 39 others of the 40 go to triggers 0-2 equally
    assert per_trigger(keys(store, balanced, 3, seed=5)) == {0: 13, 1: 13, 2: 13, 3: 1}


def test_balanced_presampling_forces_balance_or_target_size_as_modyn(store):
    def per_trigger(chosen):
        return {t: sum(1 for key in chosen if key != "late" and min(int(key[1:]) // 30, 2) == t) for t in range(3)}

    def coreset(ratio, **presampling):
        presampling_config = {"strategy": "TriggerBalanced", "ratio": ratio, **presampling}
        return CoresetStrategy(name="CoresetStrategy", presampling_config=presampling_config)

    forced = keys(store, coreset(40, force_column_balancing=True), 3, seed=5)
    assert per_trigger(forced) == {0: 1, 1: 1, 2: 1} and "late" in forced, "each as many as the smallest (1)"
    # 35 of 100 in groups of 30, 30, 40: a fair share of 11 gives 33; forced to 35 with 12 each, the latest dropped
    assert per_trigger(keys(store, coreset(35), 2, seed=5)) == {0: 11, 1: 11, 2: 11}
    assert per_trigger(keys(store, coreset(35, force_required_target_size=True), 2, seed=5)) == {0: 12, 1: 12, 2: 11}


def test_warmup_triggers_train_on_all_their_data(store):
    warm = CoresetStrategy(name="CoresetStrategy", warmup_triggers=3,
                           presampling_config={"strategy": "Random", "ratio": 10})  # fmt: skip
    assert len(keys(store, warm, 2, seed=1)) == 100, "trigger 2 is in the warmup: no presampling"
    assert len(keys(store, warm, 3, seed=1)) == 10, "trigger 3 is past it"


def test_random_no_replacement_draws_unused_samples_first(store):
    strategy = CoresetStrategy(
        name="CoresetStrategy", presampling_config={"strategy": "RandomNoReplacement", "ratio": 50}
    )
    try:
        sets = []
        for trigger in range(4):
            size = materialize(store, strategy, pipeline_id="p", dataset="d", trigger_index=trigger, seed=6)
            chosen = store.query(
                "SELECT key FROM training_sets WHERE pipeline_id = 'p' AND trigger_index = {t:UInt32}", {"t": trigger}
            )
            sets.append({row[0] for row in chosen})
            assert size == len(chosen) == len(sets[-1])
        assert [len(s) for s in sets] == [15, 30, 50, 50]
        assert not sets[0] & sets[1] and not (sets[0] | sets[1]) & sets[2], "unused samples come first"
        unused = (k(*range(100)) | {"late"}) - sets[0] - sets[1] - sets[2]
        assert len(unused) == 6 and unused <= sets[3], "then every unused one before any is drawn twice"
        again = materialize(store, strategy, pipeline_id="p", dataset="d", trigger_index=3, seed=6)
        rows = store.query("SELECT key FROM training_sets WHERE pipeline_id = 'p' AND trigger_index = 3")
        assert again == 50 and {row[0] for row in rows} == sets[3], "a repeated build replaces, not doubles"
    finally:
        store.command("DELETE FROM training_sets WHERE pipeline_id = 'p'")


def test_unknown_trigger_is_clear(store):
    with pytest.raises(SelectionError, match="pipeline p: no trigger 9 in ClickHouse triggers"):
        select(store, NewDataStrategy(name="NewDataStrategy"), pipeline_id="p", dataset="d", trigger_index=9, seed=0)


def test_a_hash_threshold_that_lets_too_few_rows_through_falls_back_to_the_exact_set(store, monkeypatch):
    from modyn_stream.selection import strategies

    random = CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "Random", "ratio": 30})
    balanced = CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "LabelBalanced", "ratio": 40})
    expected = [keys(store, random, 2, seed=7), keys(store, balanced, 2, seed=7)]
    monkeypatch.setattr(strategies, "_threshold", lambda k, n: 1)  # almost no hash is below 1
    assert [keys(store, random, 2, seed=7), keys(store, balanced, 2, seed=7)] == expected


def test_equal_keys_tied_at_the_hash_cut_still_give_the_planned_size(clickhouse_dsn):
    """Equal keys hash alike: a cut at their hash would take all of them, so the set is sorted out instead."""
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    store.migrate()
    n = 40
    store.insert("samples", {
        "dataset": ["d"] * n, "key": ["same"] * 30 + [f"k{i}" for i in range(10)], "event_time": list(range(n)),
        "label": [i % 2 for i in range(n)], "topic": ["ns.samples.d"] * n, "kafka_partition": [0] * n,
        "kafka_offset": list(range(n)), "payload_size": [1] * n, "ingested_at": [0] * n,
    })  # fmt: skip
    store.insert("triggers", {
        "pipeline_id": ["p"], "trigger_index": [0], "dataset": ["d"], "boundary_event_time": [n],
        "boundary_key": ["zzz"], "num_new_samples": [n], "reason": ["test"], "fired_at": [0],
        "snapshot_partitions": [[0]], "snapshot_offsets": [[n]], "watermark": [None],
    })  # fmt: skip
    for strategy, size in [
        (CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "Random", "ratio": 50}), 20),
        (CoresetStrategy(name="CoresetStrategy", presampling_config={"strategy": "LabelBalanced", "ratio": 50}), 20),
    ]:
        assert materialize(store, strategy, pipeline_id="p", dataset="d", trigger_index=0, seed=1) == size
        rows = store.query("SELECT count(), uniqExact(kafka_offset) FROM training_sets WHERE pipeline_id = 'p'")
        assert rows == [(size, size)], strategy
