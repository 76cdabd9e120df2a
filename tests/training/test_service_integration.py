"""The trainer service on real Kafka and ClickHouse (CPU): versions, warm start, determinism, bad payloads."""

import uuid

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import torch

from modyn_stream.artifacts import ArtifactStore, sha256_file, verified
from modyn_stream.datasets.generators import generate
from modyn_stream.evaluation.service import EvaluatorService
from modyn_stream.events import EventCodec
from modyn_stream.kafka.dlq import HEADER_REASON
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.registry import register_pipeline
from modyn_stream.pipeline.trust import CodeTrust, UntrustedCodeError
from modyn_stream.replay.publisher import TimestampPolicy, replay
from modyn_stream.replay.sources import SampleSource
from modyn_stream.selection.manifest import SCHEMA, write_manifest
from modyn_stream.selection.service import SelectorService
from modyn_stream.selection.strategies import plan_selection, write_plan
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.model_store import load_model
from modyn_stream.training.service import TrainerService
from modyn_stream.training.trained_samples import read_trained_samples
from modyn_stream.triggers.service import TriggerService
from tests.selection.test_service_integration import Crash, crashes_at, read_all, run_until_idle
from tests.triggers.test_service_integration import ingest_all, pipeline

pytestmark = pytest.mark.integration


def digits_pipeline(dataset: str, **training):
    config = pipeline(dataset, {"id": "DataAmountTrigger", "num_samples": 300}).model_dump(exclude_none=True)
    config["training"] |= {"epochs_per_trigger": 1, "batch_size": 32, **training}
    config["selection_strategy"] = {"name": "NewDataStrategy", "tail_triggers": 0}
    config["evaluation"] = evaluation(dataset)
    validated, problems = validate_data(config)
    assert not problems, problems
    return validated


EVAL_INTERVALS = [("2024-01-01", "2024-01-21"), ("2024-01-21", "2024-02-10"), ("2024-02-10", "2024-03-02")]


def evaluation(dataset: str) -> dict:
    """Every model on three static windows after training; the active model between triggers at the end."""
    return {
        "handlers": [
            {"name": "slices", "models": "matrix", "datasets": [dataset],
             "strategy": {"type": "StaticEvalStrategy", "intervals": EVAL_INTERVALS}},
            {"name": "final", "execution_time": "after_pipeline", "models": "active",
             "strategy": {"type": "BetweenTwoTriggersEvalStrategy"}, "datasets": [dataset]},
        ],
        "datasets": [{"dataset_id": dataset, "batch_size": 50,
                      "metrics": [{"name": "Accuracy"}, {"name": "F1Score"}, {"name": "RocAuc"}]}],
    }  # fmt: skip


def selected(settings, store, tmp_path, dataset: str, partitions: int, labels=None):
    """600 drifting digits (with `labels` if given) replayed, ingested, triggered twice and selected."""
    data = generate("digits-drift", samples=600, seed=3)
    source = SampleSource([x.tobytes() for x in data.x], data.y if labels is None else labels, data.t, data.t, "digits")
    replay(settings, dataset, source, TimestampPolicy("field"), partitions=partitions)
    config = digits_pipeline(dataset)
    pid = register_pipeline(config, settings, store)
    ingest_all(settings, store, dataset, partitions, 600)
    artifacts = ArtifactStore(tmp_path / "artifacts")
    run_until_idle(lambda: TriggerService(settings, store))
    run_until_idle(lambda: SelectorService(settings, store, artifacts))
    return config, pid, artifacts


@pytest.fixture
def trained(kafka_settings, clickhouse_dsn, tmp_path):
    """600 drifting digits replayed, ingested, triggered twice, selected and trained (crashing once)."""
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    config, pid, artifacts = selected(kafka_settings, store, tmp_path, "dig", partitions=2)
    fault = crashes_at(1)  # killed after storing the first model, before committing its event
    run_until_idle(lambda: TrainerService(kafka_settings, store, artifacts, fault=fault))
    codec = EventCodec()
    names = TopicNames(kafka_settings.namespace)
    versions = sorted((codec.decode(m.value()).record for m in read_all(kafka_settings, names.models)),
                      key=lambda e: e["trigger_index"])  # fmt: skip
    sets = sorted((codec.decode(m.value()).record for m in read_all(kafka_settings, names.training_sets)),
                  key=lambda e: e["trigger_index"])  # fmt: skip
    return store, artifacts, pid, config, versions, sets


def test_two_triggers_give_two_model_versions_exactly_once(trained):
    store, _, pid, config, versions, _ = trained
    assert [v["trigger_index"] for v in versions] == [0, 1], "one version per trigger despite the crash"
    full = 300 // config.training.batch_size * config.training.batch_size  # drop_last_batch
    assert [v["parent_model_id"] for v in versions] == [None, f"{pid}/0"]
    for version in versions:
        state, metadata = load_model(version["model_uri"], version["model_sha256"])
        assert metadata["model_id"] == version["model_id"] and "head.weight" in state
        assert version["num_samples"] == 300 and version["epochs"] == 1 and version["final_loss"] > 0
        assert set(version["timings_s"]) == {"fetch", "decode", "train", "downsample", "store", "total"}
        assert version["samples_trained"] == full and version["timings_s"]["downsample"] == 0, "no downsampling"
        record = read_trained_samples(verified(version["trained_samples_uri"], version["trained_samples_sha256"]))
        assert record.num_rows == full and metadata["trained_samples_sha256"] == version["trained_samples_sha256"]
        assert set(record["weight"].to_pylist()) == {1.0}, "an unweighted loss"
    rows = store.query("SELECT trigger_index, model_sha256 FROM models FINAL WHERE pipeline_id = {p:String} "
                       "ORDER BY trigger_index", {"p": pid})  # fmt: skip
    assert rows == [(v["trigger_index"], v["model_sha256"]) for v in versions]


def test_warm_start_begins_from_the_previous_weights_and_retraining_is_deterministic(kafka_settings, trained):
    store, artifacts, _, config, versions, sets = trained
    parent = load_model(versions[0]["model_uri"])[0]
    data = config.model_dump(exclude_none=True)
    data["training"]["optimizers"] = [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.0}}]}]
    frozen = validate_data(data)[0]
    with TrainerService(kafka_settings, store, ArtifactStore(artifacts.root.parent / "other")) as service:
        warm = service.train_version(frozen, sets[1])  # lr 0: the weights are exactly where training started
        warm_state = load_model(warm["model_uri"])[0]
        cold_config = frozen.model_copy(
            update={"training": frozen.training.model_copy(update={"use_previous_model": False})}
        )
        cold_state = load_model(service.train_version(cold_config, sets[1])["model_uri"])[0]
        again = service.train_version(config, sets[0])  # the same seed and manifest as version 0
    learned = [name for name in parent if "running" not in name and "num_batches" not in name]
    assert all(torch.equal(warm_state[name], parent[name]) for name in learned)
    assert not all(torch.equal(cold_state[name], parent[name]) for name in learned)
    first, second = load_model(versions[0]["model_uri"]), load_model(again["model_uri"])
    diff = [n for n in first[0] if not torch.equal(first[0][n], second[0][n])]
    assert not diff, diff
    assert first[1] == second[1]
    assert again["model_sha256"] == versions[0]["model_sha256"], "same seed + same manifest => same model bytes"
    assert again["trained_samples_sha256"] == versions[0]["trained_samples_sha256"], "and the same record"


def test_a_set_stored_as_a_predicate_trains_the_model_its_rows_train(kafka_settings, trained):
    store, artifacts, pid, config, versions, sets = trained
    assert all(e["manifest_uri"].endswith(".predicate.json") for e in sets), "new data only: a predicate"
    assert store.query("SELECT count() FROM training_sets WHERE pipeline_id = {p:String}", {"p": pid}) == [(0,)]
    plan = plan_selection(store, config.selection_strategy, pipeline_id=pid, dataset="dig", trigger_index=0,
                          seed=config.training.seed or 0)  # fmt: skip
    write_plan(store, plan)  # the same set as rows, as a sampled set is kept
    rows = artifacts.root.parent / "rows.arrow"
    write_manifest(store, pid, 0, rows)
    expanded = ArtifactStore.resolve(sets[0]["manifest_uri"].removesuffix(".predicate.json") + ".arrow")
    assert rows.read_bytes() == expanded.read_bytes(), "the trainer saw the same manifest, byte for byte"
    materialised = {**sets[0], "manifest_uri": rows.as_uri(), "manifest_sha256": sha256_file(rows)}
    with TrainerService(kafka_settings, store, ArtifactStore(artifacts.root.parent / "rows")) as service:
        again = service.train_version(config, materialised)
    first, second = load_model(versions[0]["model_uri"])[0], load_model(again["model_uri"])[0]
    assert all(torch.equal(first[name], second[name]) for name in first), "and trained the same model"
    assert again["trained_samples_sha256"] == versions[0]["trained_samples_sha256"]


def test_a_pretrained_start_loads_the_stored_version_named_by_initial_model_id(kafka_settings, trained):
    store, artifacts, pid, config, versions, sets = trained
    data = config.model_dump(exclude_none=True)
    data["pipeline"]["name"] = "from-a-stored-version"
    data["training"] |= {"initial_model": "pretrained", "initial_model_id": versions[1]["model_id"],
                         "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.0}}]}]}  # fmt: skip
    pretrained = validate_data(data)[0]
    first_set = {**sets[0], "pipeline_id": "from-a-stored-version-0"}  # trigger 0 of another pipeline
    with TrainerService(kafka_settings, store, ArtifactStore(artifacts.root.parent / "pretrained")) as service:
        started = load_model(service.train_version(pretrained, first_set)["model_uri"])[0]
        missing = pretrained.model_copy(update={"training": pretrained.training.model_copy(
            update={"initial_model_id": f"{pid}/7"})})  # fmt: skip
        with pytest.raises(TrainingError, match=f"training.initial_model_id: no stored model version '{pid}/7'"):
            service.train_version(missing, {**first_set, "pipeline_id": "other-0"})
    stored = load_model(versions[1]["model_uri"])[0]
    learned = [name for name in stored if "running" not in name and "num_batches" not in name]
    assert all(torch.equal(started[name], stored[name]) for name in learned), "lr 0: exactly the stored weights"


def test_weights_difference_versions_load_as_the_full_models_they_replace(kafka_settings, trained):
    store, artifacts, _, config, versions, sets = trained
    data = config.model_dump(exclude_none=True)
    incremental = {"config": {"operator": "xor"}, "zip": True, "full_model_interval": 5}
    data["model_storage"] = {"incremental_model_strategy": incremental}
    with TrainerService(kafka_settings, store, artifacts) as service:
        delta = service.train_version(validate_data(data)[0], sets[1])  # a delta against version 0
    assert load_model(delta["model_uri"], delta["model_sha256"])[1]["delta_depth"] == 1
    full, rebuilt = load_model(versions[1]["model_uri"])[0], load_model(delta["model_uri"])[0]
    assert all(torch.equal(full[name], rebuilt[name]) for name in full)


def test_a_trainer_killed_mid_training_resumes_from_its_checkpoint(kafka_settings, trained):
    store, artifacts, _, config, versions, sets = trained
    data = config.model_dump(exclude_none=True)
    data["training"]["checkpointing"] = {"activated": True, "interval": 3}  # 10 batches: saves at 3, 6, 9
    checkpointed = validate_data(data)[0]
    other = ArtifactStore(artifacts.root.parent / "resume")
    points = []
    with TrainerService(kafka_settings, store, other, fault=crashes_at(2)) as service, pytest.raises(Crash):
        service.train_version(checkpointed, sets[0])  # killed after the checkpoint at batch 6
    with TrainerService(kafka_settings, store, other, fault=points.append) as service:
        resumed = service.train_version(checkpointed, sets[0])
    assert points == ["after_checkpoint", "after_store"], "resumed after batch 6: only batch 9 is saved again"
    assert not list(other.root.glob("*/checkpoints/*.pt")), "the checkpoint is removed once the model is stored"
    reference, rebuilt = load_model(versions[0]["model_uri"])[0], load_model(resumed["model_uri"])[0]
    assert all(torch.equal(reference[name], rebuilt[name]) for name in reference), "as if never interrupted"


def test_a_missing_payload_offset_is_a_dead_letter_not_a_hung_trainer(kafka_settings, trained, tmp_path):
    store, artifacts, pid, _, _, sets = trained
    manifest = tmp_path / "broken.arrow"
    columns = [
        [0, 0],
        [0, 10_000],
        ["x", "y"],
        [1, 2],
        [1.0, 1.0],
    ]  # offset 0 holds another key; 10,000 is past the end
    table = pa.table(dict(zip(SCHEMA.names, columns, strict=True)), schema=SCHEMA)
    with ipc.new_file(manifest, SCHEMA) as writer:
        writer.write_table(table)
    codec = EventCodec()
    names = TopicNames(kafka_settings.namespace)
    broken = {
        **sets[0],
        "trigger_index": 7,
        "manifest_uri": manifest.as_uri(),
        "manifest_sha256": sha256_file(manifest),
    }
    with EventProducer(kafka_settings) as producer:
        producer.produce(names.training_sets, codec.encode("TrainingSetEvent", broken), key=pid)
    with TrainerService(kafka_settings, store, artifacts) as service:
        while not service.step():
            pass
        assert service.dead_letters == 1 and service.trained == 0
    reason = dict(read_all(kafka_settings, names.dlq)[-1].headers())[HEADER_REASON].decode()
    assert reason.startswith(f"training set {pid}#7: ") and "dig[0]@0: holds key" in reason and "'x'" in reason
    failures = store.query("SELECT trigger_index, reason FROM training_failures FINAL WHERE pipeline_id = {p:String}",
                           {"p": pid})  # fmt: skip
    assert [(index, f"training set {pid}#7: {why}") for index, why in failures] == [(7, reason)], "for the triggers"


def test_labels_the_model_cannot_take_are_left_out_and_named_and_the_stages_go_on(kafka_settings, clickhouse_dsn,
                                                                                   tmp_path):  # fmt: skip
    # A label is any long in the sample schema; -2^63 and 10 are no class of a 10-class model. They crashed the
    # trainer on every restart (IndexError), stopping every pipeline it served.
    store = MetadataStore(clickhouse_dsn, database=f"t_{uuid.uuid4().hex[:10]}")
    labels = generate("digits-drift", samples=600, seed=3).y.copy()
    labels[[5, 400]] = [-(2**63), 10]  # one in each trigger's new data
    _, pid, artifacts = selected(kafka_settings, store, tmp_path, "bad", partitions=1, labels=labels)
    with TrainerService(kafka_settings, store, artifacts) as trainer:
        while trainer.step():
            pass
        assert trainer.trained == 2 and trainer.dead_letters == 0
    with EvaluatorService(kafka_settings, store) as evaluator:
        while evaluator.step():
            pass
        assert evaluator.done == 2 and evaluator.dead_letters == 0

    codec, names = EventCodec(), TopicNames(kafka_settings.namespace)
    versions = sorted((codec.decode(m.value()).record for m in read_all(kafka_settings, names.models)),
                      key=lambda e: e["trigger_index"])  # fmt: skip
    assert [v["num_samples"] for v in versions] == [299, 299]  # 300 new samples each, one left out
    assert "labels outside the model's 10 classes" in load_model(versions[0]["model_uri"])[1]["left_out"]
    notes = [dict(m.headers()) for m in read_all(kafka_settings, names.dlq)]
    trainer_notes = [n[HEADER_REASON].decode() for n in notes if n["dlq.stage"] == b"trainer"]
    assert trainer_notes == [
        f"training set {pid}#0: 1 of 300 samples left out: labels outside the model's 10 classes: "
        f"'{5:010d}' ([0]@5, label -9223372036854775808)",
        f"training set {pid}#1: 1 of 300 samples left out: labels outside the model's 10 classes: "
        f"'{400:010d}' ([0]@400, label 10)",
    ]
    evaluator_notes = [n[HEADER_REASON].decode() for n in notes if n["dlq.stage"] == b"evaluator"]
    assert len(evaluator_notes) == 2 and all("2 of " in n and "bad: " in n for n in evaluator_notes), evaluator_notes
    counted = store.query("SELECT max(num_samples) FROM evaluations WHERE pipeline_id = {p:String}", {"p": pid})
    assert counted[0][0] < 600 and store.query("SELECT count() FROM evaluations")[0][0] > 0


def test_code_a_pipeline_names_is_imported_only_where_the_operator_trusts_it(kafka_settings, trained):
    store, artifacts, _, config, _, sets = trained
    custom = config.model_copy(update={"data": config.data.model_copy(
        update={"decoder": "tests.training.custom_code:decode_digits", "decoder_config": {}})})  # fmt: skip
    with TrainerService(kafka_settings, store, artifacts) as untrusting, pytest.raises(UntrustedCodeError):
        untrusting.train_version(custom, sets[0])
    trusted = TrainerService(kafka_settings, store, artifacts, trust=CodeTrust(modules=("tests.training",)))
    with trusted:
        assert trusted.train_version(custom, sets[0])["num_samples"] == 300
