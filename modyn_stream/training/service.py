"""The trainer service: one model version per TrainingSetEvent, exactly once.

Consume-transform-produce in Kafka transactions, one event per transaction: the
ModelVersionEvent and the TrainingSetEvent's offset commit together. What happens before the
commit is repeatable: the model's id and path are functions of (pipeline, trigger), the file is
replaced atomically and the `models` row is keyed by (pipeline, trigger), so a trainer killed
mid-training retrains that trigger on restart and still leaves one version. A training set that
cannot be used (manifest missing or altered, a predicate whose rows ClickHouse no longer gives, a
payload offset missing or wrong) goes to the dead-letter topic with the reason; the trainer carries
on with the next trigger. Samples whose labels the model cannot take are left out, and a dead
letter beside the model event names them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import torch
from confluent_kafka import Message

from modyn_stream.artifacts import ArtifactError, ArtifactStore, verified
from modyn_stream.events import DecodedEvent
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.producer import OutgoingRecord
from modyn_stream.kafka.stage import TransactionalStage
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.registry import registered_pipeline
from modyn_stream.pipeline.trust import NOBODY, CodeTrust, UntrustedCodeError
from modyn_stream.selection.manifest import SUFFIX, read_manifest
from modyn_stream.selection.predicate import SUFFIX as PREDICATE
from modyn_stream.selection.predicate import expand, is_predicate, read_predicate
from modyn_stream.selection.strategies import trigger_keys
from modyn_stream.training.checkpoint import Checkpointer
from modyn_stream.training.decoders import build_label_transformer, data_decoder
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.fetch import PayloadFetchers
from modyn_stream.training.labels import class_count, keep_classes
from modyn_stream.training.loader import ChunkLoader
from modyn_stream.training.loop import train
from modyn_stream.training.model_store import StoredVersion, load_model, model_path, save_model
from modyn_stream.training.models import build_model
from modyn_stream.training.rho_loss import IrreducibleLoss, irreducible_losses
from modyn_stream.training.trained_samples import trained_samples_path, write_trained_samples

log = logging.getLogger(__name__)


class TrainerService(TransactionalStage):
    stage = "trainer"
    consumes = "TrainingSetEvent"
    max_handle_s = 6 * 3600  # training one trigger may take hours

    def __init__(
        self,
        settings: KafkaSettings,
        store: MetadataStore,
        artifacts: ArtifactStore,
        *,
        instance: str = "0",
        cache_bytes: int = 512 << 20,
        trust: CodeTrust = NOBODY,
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        super().__init__(settings, TopicNames(settings.namespace).training_sets, instance=instance)
        self.store = store
        self.artifacts = artifacts
        self.trust = trust  # the code pipelines may name that this process's operator trusts
        self.fault = fault  # crash-injection points for tests: after_checkpoint, after_store
        self.fetchers = PayloadFetchers(settings, self.codec, cache_bytes)
        self.last_event: dict | None = None
        self.left_out: str | None = None  # the last training set's samples whose labels the model cannot take
        store.migrate()

    @property
    def trained(self) -> int:
        return self.done

    def handle(self, msg: Message, decoded: DecodedEvent) -> OutgoingRecord | list[OutgoingRecord]:
        event = decoded.record
        pid, index = event["pipeline_id"], event["trigger_index"]
        config = registered_pipeline(self.store, pid)
        if config is None:
            return self.dead_letter(msg, f"training set {pid}#{index}: pipeline {pid} is not registered")
        try:
            out = self.train_version(config, event)
        except (TrainingError, ArtifactError, UntrustedCodeError) as exc:
            self._record_failure(pid, index, str(exc))
            return self.dead_letter(msg, f"training set {pid}#{index}: {exc}")
        self.last_event = out
        model = OutgoingRecord(self.names.models, self.codec.encode("ModelVersionEvent", out), key=pid)
        if self.left_out is None:
            return model
        return [self.dead_letter(msg, f"training set {pid}#{index}: {self.left_out}"), model]

    def _record_failure(self, pid: str, index: int, reason: str) -> None:
        """The `training_failures` row (keyed, so a retry after a crash leaves one): a batched trigger waiting for
        this model then decides with the last one trained instead of waiting forever."""
        self.store.insert("training_failures", {"pipeline_id": [pid], "trigger_index": [index], "reason": [reason],
                                                "failed_at": [int(time.time() * 1000)]})  # fmt: skip

    def train_version(self, config: PipelineConfig, event: dict) -> dict:
        """Train and store the trigger's model; return its ModelVersionEvent."""
        pid, index = event["pipeline_id"], event["trigger_index"]
        started = time.perf_counter()
        manifest = self._training_set(event)
        manifest, self.left_out = keep_classes(manifest, class_count(config))
        if self.left_out is not None and manifest.num_rows == 0:
            raise TrainingError(f"no sample left to train on: {self.left_out}")
        training = config.training
        torch.manual_seed(training.seed or 0)  # the same initial weights for the same seed
        model = build_model(config.model.id, config.model.config, trust=self.trust)
        needs_previous = training.use_previous_model or config.model_storage.incremental_model_strategy is not None
        previous = self._previous(pid, index) if needs_previous else None
        base = None  # the previous version: warm start and delta base
        if previous is not None:
            base = StoredVersion(ArtifactStore.resolve(previous[1]), previous[2], *load_model(previous[1], previous[2]))
        parent = previous if training.use_previous_model else None
        if parent is not None:
            model.load_state_dict(base.state_dict)
        elif training.initial_model == "pretrained":
            model.load_state_dict(self._initial_state(training))
        data = config.data
        seed = (training.seed or 0) * 1_000_003 + index  # random transformations: the same for the same set
        decoder = data_decoder(data, trust=self.trust, seed=seed)
        loader = ChunkLoader(self.fetchers[event["dataset"]], decoder, manifest)
        labels = build_label_transformer(data.label_transformer, trust=self.trust)
        chunks = ((x, labels(y), w) for x, y, w in loader)
        checkpointer = self._checkpointer(config, event, parent)
        downsampling = config.selection_strategy.downsampling(index)
        rho = None
        try:
            if downsampling is not None and downsampling.strategy == "RHOLoss":  # its IL models train first
                chunks = list(chunks)
                rho = self._irreducible(config, event, downsampling, chunks, manifest)
            outcome = train(
                model, chunks, training, trigger_index=index, num_samples=manifest.num_rows,
                device=_device(training.device), checkpointer=checkpointer,
                use_weights=config.selection_strategy.uses_weights, downsampling=downsampling,
                irreducible=None if rho is None else rho.losses,
            )  # fmt: skip
        except IndexError as exc:  # a model without num_classes in its config, given a label it has no class for
            raise TrainingError(f"a label does not fit the model's outputs: {exc}") from None
        finally:
            loader.close()
        stored = time.perf_counter()
        record = trained_samples_path(self.artifacts, pid, index)
        record_sha = write_trained_samples(self.artifacts, record, manifest, outcome.trained)
        path = model_path(self.artifacts, pid, index)
        model_id = f"{pid}/{index}"
        metadata = {
            "model_id": model_id, "pipeline_id": pid, "trigger_index": index,
            "parent_model_id": parent[0] if parent else None, "manifest_sha256": event["manifest_sha256"],
            "model": config.model.id, "training_config_sha256": _config_hash(config), "left_out": self.left_out,
            "trained_samples_sha256": record_sha, **({"il_models": rho.models} if rho else {}),
        }  # fmt: skip
        sha = save_model(self.artifacts, path, model.state_dict(), metadata, storage=config.model_storage, base=base)
        if checkpointer:
            checkpointer.remove()
        self.fault("after_store")
        timings = {
            "fetch": loader.fetch_s, "decode": loader.decode_s,
            "train": outcome.train_s, "downsample": outcome.downsample_s, **({"il_train": rho.train_s} if rho else {}),
            "store": time.perf_counter() - stored, "total": time.perf_counter() - started,
        }  # fmt: skip
        out = {
            "pipeline_id": pid, "trigger_index": index, "model_id": model_id,
            "parent_model_id": metadata["parent_model_id"],
            "model_uri": ArtifactStore.uri(path), "model_sha256": sha, "manifest_sha256": event["manifest_sha256"],
            "num_samples": manifest.num_rows, "epochs": outcome.epochs, "samples_trained": outcome.samples_passed,
            "final_loss": outcome.final_loss,
            "trained_samples_uri": ArtifactStore.uri(record), "trained_samples_sha256": record_sha,
            "timings_s": timings, "created_at": int(time.time() * 1000),
        }  # fmt: skip
        self.store.insert(
            "models",
            {
                **{k: [out[k]] for k in ("pipeline_id", "trigger_index", "model_id", "parent_model_id", "model_uri",
                                         "model_sha256", "manifest_sha256", "num_samples", "epochs", "samples_trained",
                                         "final_loss", "trained_samples_uri", "trained_samples_sha256",
                                         "created_at")},
                "timings_s": [timings],
            },
        )  # fmt: skip
        log.info(
            "model %s: %d samples, %d epochs, loss %s", model_id, out["num_samples"], out["epochs"], out["final_loss"]
        )
        return out

    def _training_set(self, event: dict) -> pa.Table:
        """The set's manifest. A set stored as a predicate is expanded beside it first, into the manifest (the same
        bytes) its materialised form has, so everything downstream reads one kind of set."""
        path = verified(event["manifest_uri"], event["manifest_sha256"])
        if is_predicate(path):
            predicate = read_predicate(path)
            target = path.with_name(path.name.removesuffix(PREDICATE) + SUFFIX)
            with self.artifacts.atomic(target) as tmp:
                expand(self.store, predicate, tmp, origin=path)
            path = target
        return read_manifest(path)

    def _irreducible(
        self, config: PipelineConfig, event: dict, downsampling, chunks: list, manifest
    ) -> IrreducibleLoss:
        """RHO-Loss's step before training: the IL model(s) on a holdout of the trigger's own new samples."""
        pid, index = event["pipeline_id"], event["trigger_index"]
        own = pa.array(trigger_keys(self.store, pid, event["dataset"], index), pa.string())
        new = pc.is_in(manifest["key"], value_set=own).to_numpy(zero_copy_only=False)
        return irreducible_losses(
            downsampling, chunks, new, manifest["key"].to_pylist(), seed=config.training.seed or 0,
            trigger_index=index, criterion_config=config.training.optimization_criterion,
            device=_device(downsampling.il_training_config.device),  # the IL model's own device
            artifacts=self.artifacts, pipeline_id=pid, trust=self.trust,
        )  # fmt: skip

    def _checkpointer(self, config: PipelineConfig, event: dict, parent) -> Checkpointer | None:
        checkpointing = config.training.checkpointing
        if not checkpointing.activated:
            return None
        pid, index = event["pipeline_id"], event["trigger_index"]
        name = f"trigger-{index:06d}.pt"
        path = (
            Path(checkpointing.path) / pid / name
            if checkpointing.path
            else self.artifacts.path(pid, "checkpoints", name)
        )
        identity = {
            "pipeline_id": pid, "trigger_index": index, "manifest_sha256": event["manifest_sha256"],
            "training_config_sha256": _config_hash(config), "parent_model_sha256": parent[2] if parent else None,
        }  # fmt: skip
        return Checkpointer(
            self.artifacts, path, identity, checkpointing.interval, after_save=lambda: self.fault("after_checkpoint")
        )

    def _initial_state(self, training) -> dict:
        """The pretrained start: a stored model version (`initial_model_id`) or a model file."""
        if training.initial_model_path is not None:
            return load_model(Path(training.initial_model_path).resolve().as_uri())[0]
        rows = self.store.query(
            "SELECT model_uri, model_sha256 FROM models FINAL WHERE model_id = {m:String} LIMIT 1",
            {"m": training.initial_model_id},
        )
        if not rows:
            raise TrainingError(f"training.initial_model_id: no stored model version {training.initial_model_id!r}")
        return load_model(rows[0][0], rows[0][1])[0]

    def _previous(self, pid: str, index: int) -> tuple[str, str, str] | None:
        """The pipeline's latest version before this trigger: (model id, URI, sha256)."""
        rows = self.store.query(
            "SELECT model_id, model_uri, model_sha256 FROM models FINAL WHERE pipeline_id = {p:String} "
            "AND trigger_index < {i:UInt32} ORDER BY trigger_index DESC LIMIT 1",
            {"p": pid, "i": index},
        )
        return tuple(rows[0]) if rows else None

    def close(self, abandon: bool = False) -> None:
        super().close(abandon)
        self.fetchers.close()


def _device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"training.device is {name}, but this machine has no CUDA device")
    return device


def _config_hash(config: PipelineConfig) -> str:
    sections = config.model_dump(mode="json", include={"model", "training", "data"})
    return hashlib.sha256(json.dumps(sections, sort_keys=True).encode()).hexdigest()
