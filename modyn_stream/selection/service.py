"""The selector service: one training set per TriggerEvent, exactly once.

Consume-transform-produce in Kafka transactions (`TransactionalProcessor`): the TrainingSetEvent
and the consumer offset of its TriggerEvent commit together. The side effects before the commit
are idempotent, so a crash anywhere only repeats them: the `triggers` row is written with a
token, `write_plan` replaces a partial set, and the manifest is a pure function of the set
written by atomic rename (same rows, same bytes). A set that is the whole of a window of triggers
is stored as that predicate instead (selection/predicate.py): no rows written, whatever its size.
Undecodable events and triggers of unknown pipelines go to the dead-letter topic in the same
transaction; the service keeps going.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Message

from modyn_stream.artifacts import ArtifactStore, sha256_file
from modyn_stream.events import DecodedEvent
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.producer import OutgoingRecord
from modyn_stream.kafka.stage import TransactionalStage
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.registry import registered_pipeline
from modyn_stream.selection.manifest import SUFFIX, write_manifest
from modyn_stream.selection.predicate import SUFFIX as PREDICATE
from modyn_stream.selection.predicate import predicate_for, write_predicate
from modyn_stream.selection.strategies import Plan, SelectionError, plan_selection, write_plan
from modyn_stream.triggers.record import record_trigger

log = logging.getLogger(__name__)


class SelectorService(TransactionalStage):
    stage = "selector"
    consumes = "TriggerEvent"

    def __init__(
        self,
        settings: KafkaSettings,
        store: MetadataStore,
        artifacts: ArtifactStore,
        *,
        instance: str = "0",
        fault: Callable[[str], None] = lambda point: None,
    ) -> None:
        super().__init__(settings, TopicNames(settings.namespace).triggers, instance=instance)
        self.store = store
        self.artifacts = artifacts
        self.fault = fault  # crash-injection point for tests: after_manifest
        store.migrate()

    @property
    def selected(self) -> int:
        return self.done

    def handle(self, msg: Message, decoded: DecodedEvent) -> OutgoingRecord:
        event = decoded.record
        pid, index = event["pipeline_id"], event["trigger_index"]
        config = registered_pipeline(self.store, pid)
        if config is None:
            return self.dead_letter(msg, f"trigger {pid}#{index}: pipeline {pid} is not registered")
        started = time.perf_counter()
        record_trigger(self.store, event)
        strategy = config.selection_strategy
        where = {"pipeline_id": pid, "dataset": event["dataset"], "trigger_index": index}
        try:
            plan = plan_selection(self.store, strategy, **where, seed=config.training.seed or 0)
        except SelectionError as exc:
            return self.dead_letter(msg, str(exc))
        size, path = write_training_set(self.store, self.artifacts, plan, **where)
        checksum = sha256_file(path)
        self.fault("after_manifest")
        out = {
            "pipeline_id": pid,
            "dataset": event["dataset"],
            "trigger_index": index,
            "strategy": strategy.name,
            "num_samples": size,
            "manifest_uri": self.artifacts.uri(path),
            "manifest_sha256": checksum,
            "created_at": int(time.time() * 1000),
        }
        log.info("training set %s#%d: %d samples in %.2fs", pid, index, size, time.perf_counter() - started)
        return OutgoingRecord(self.names.training_sets, self.codec.encode("TrainingSetEvent", out), key=pid)


def write_training_set(
    store: MetadataStore, artifacts: ArtifactStore, plan: Plan, *, pipeline_id: str, dataset: str, trigger_index: int
) -> tuple[int, Path]:
    """Store the planned set; return its size and the file its event names.

    The whole of a window of triggers is stored as its bounds (O(partitions), whatever its size); any
    other set as rows in `training_sets` and their manifest."""
    name = f"trigger-{trigger_index:06d}"
    if plan.window is not None:
        predicate = predicate_for(store, dataset, *plan.window)
        path = artifacts.path(pipeline_id, "training-sets", name + PREDICATE)
        with artifacts.atomic(path) as tmp:
            write_predicate(predicate, tmp)
        return predicate.rows, path
    size, path = write_plan(store, plan), artifacts.path(pipeline_id, "training-sets", name + SUFFIX)
    with artifacts.atomic(path) as tmp:
        write_manifest(store, pipeline_id, trigger_index, tmp)
    return size, path
