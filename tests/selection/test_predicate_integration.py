"""Training sets stored as predicates, on the real ClickHouse engine: the same manifest as the rows would give."""

import uuid

import pytest

from modyn_stream.artifacts import ArtifactError
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.schema.selection import CoresetStrategy, NewDataStrategy
from modyn_stream.selection.manifest import read_manifest, write_manifest
from modyn_stream.selection.predicate import expand, predicate_for, read_predicate, write_predicate
from modyn_stream.selection.strategies import plan_selection, write_plan

pytestmark = pytest.mark.integration


def sample_store(clickhouse_dsn) -> MetadataStore:
    """300 samples over three partitions, out of order in time, one without a label; two triggers."""
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    store.migrate()
    n = 300
    times = [(i * 7919) % n * 10 for i in range(n)]  # a permutation: event time is not offset order
    store.insert("samples", {
        "dataset": ["d"] * n, "key": [f"k{i:03d}" for i in range(n)], "event_time": times,
        "label": [None if i == 17 else i % 4 for i in range(n)], "topic": ["ns.samples.d"] * n,
        "kafka_partition": [i % 3 for i in range(n)], "kafka_offset": [i // 3 for i in range(n)],
        "payload_size": [1] * n, "ingested_at": [0] * n,
    })  # fmt: skip
    store.insert("triggers", {
        "pipeline_id": ["p", "p"], "trigger_index": [0, 1], "dataset": ["d", "d"],
        "boundary_event_time": [1490, 2990], "boundary_key": ["k999", "k999"], "num_new_samples": [0, 0],
        "reason": ["test"] * 2, "fired_at": [0, 0], "snapshot_partitions": [[0, 1, 2]] * 2,
        "snapshot_offsets": [[60, 60, 60], [100, 100, 100]], "watermark": [None, None],
    })  # fmt: skip
    return store


@pytest.fixture(scope="module")
def store(clickhouse_dsn):
    return sample_store(clickhouse_dsn)


def new(**fields) -> NewDataStrategy:
    return NewDataStrategy(name="NewDataStrategy", **fields)


def coreset(**fields) -> CoresetStrategy:
    return CoresetStrategy(name="CoresetStrategy", **fields)


def plan(store, strategy, trigger):
    return plan_selection(store, strategy, pipeline_id="p", dataset="d", trigger_index=trigger, seed=4)


@pytest.mark.parametrize(
    ("strategy", "trigger"),
    [
        (new(), 1),  # all data so far
        (new(tail_triggers=0), 1),  # the trigger's new data: past trigger 0's bounds
        (new(tail_triggers=0), 0),
        (coreset(presampling_config={"strategy": "No"}), 1),
        (coreset(presampling_config={"strategy": "Random", "ratio": 50}, warmup_triggers=2), 1),
    ],
)
def test_a_predicate_and_the_rows_it_stands_for_give_byte_identical_manifests(store, strategy, trigger, tmp_path):
    planned = plan(store, strategy, trigger)
    assert planned.window is not None
    write_plan(store, planned)
    write_manifest(store, "p", trigger, tmp_path / "rows.arrow")
    predicate = predicate_for(store, "d", *planned.window)
    write_predicate(predicate, tmp_path / "set.predicate.json")
    assert len((tmp_path / "set.predicate.json").read_bytes()) < 1000  # bounds, not rows
    rows = expand(store, read_predicate(tmp_path / "set.predicate.json"), tmp_path / "predicate.arrow", tmp_path)
    assert rows == predicate.rows == planned.size > 0
    assert (tmp_path / "predicate.arrow").read_bytes() == (tmp_path / "rows.arrow").read_bytes()
    manifest = read_manifest(tmp_path / "predicate.arrow")
    assert manifest.num_rows == rows and manifest["label"].null_count == int("k017" in manifest["key"].to_pylist())
    store.command("DELETE FROM training_sets WHERE pipeline_id = 'p'")


@pytest.mark.parametrize(
    "strategy",
    [
        new(limit=10),
        new(limit=10, limit_reset="lastX"),
        coreset(presampling_config={"strategy": "Random", "ratio": 50}),
        coreset(presampling_config={"strategy": "LabelBalanced", "ratio": 50}),
        # Its later sets count earlier uses in `training_sets`, so even its warmup sets are written there.
        coreset(presampling_config={"strategy": "RandomNoReplacement", "ratio": 50}, warmup_triggers=2),
    ],
)
def test_sampled_or_limited_sets_keep_their_rows(store, strategy):
    assert plan(store, strategy, 1).window is None


def test_a_limit_the_window_does_not_reach_is_still_the_whole_window(store):
    assert plan(store, new(limit=10_000), 1).window is not None


def test_a_predicate_whose_rows_changed_is_refused_naming_the_file(clickhouse_dsn, tmp_path):
    store = sample_store(clickhouse_dsn)
    predicate = predicate_for(store, "d", *plan(store, new(), 1).window)
    store.command("DELETE FROM samples WHERE key = 'k005'")
    origin = tmp_path / "trigger-000001.predicate.json"
    with pytest.raises(ArtifactError, match=f"{origin}: ClickHouse now gives 299 samples .* the set had 300"):
        expand(store, predicate, tmp_path / "m.arrow", origin)


def test_a_relabelled_sample_changes_the_checksum(clickhouse_dsn):
    store = sample_store(clickhouse_dsn)
    window = plan(store, new(), 1).window
    before = predicate_for(store, "d", *window)
    store.command("ALTER TABLE samples UPDATE label = 3 WHERE key = 'k004'", settings={"mutations_sync": 2})
    after = predicate_for(store, "d", *window)
    assert after.rows == before.rows and after.checksum != before.checksum


@pytest.mark.parametrize("text", ["{", '{"format": "other"}', '{"format": "modyn-stream/training-set-predicate"}'])
def test_an_unreadable_predicate_file_is_one_line(tmp_path, text):
    path = tmp_path / "trigger-000000.predicate.json"
    path.write_text(text)
    with pytest.raises(ArtifactError, match=f"^training-set predicate {path}: cannot read: [^\n]+$"):
        read_predicate(path)
