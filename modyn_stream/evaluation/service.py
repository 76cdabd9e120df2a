"""The evaluator service: every model version scored on its windows, exactly once.

On each ModelVersionEvent the `after_training` handlers name windows (per strategy) and which of
them this model is scored on (`models`: matrix = all, active = from its trigger boundary on,
training = those overlapping the data it was newly trained on). The event is handled only once those
windows are complete (the dataset's watermark has passed their ends, or its stream ended): until
then it stays uncommitted, so a window partly ingested is never scored (see `ready`). Samples are
read by offset like the trainer's, once per dataset for all windows together, and kept decoded for the next
model where they fit (evaluation/inputs.py); the model runs over them once and every window's metrics are
computed from those outputs. The rows go to ClickHouse `evaluations` (keyed
by model, dataset, window and metric, so a retry replaces them) and the EvaluationEvents commit
in the same Kafka transaction as the model event's offset. `after_pipeline` handlers run through
`evaluate_pipeline` once the run is over: their events go out in one transaction of their own,
marked by a header, and that marker on `{ns}.evaluations` is what says they were done, so a run
stopped anywhere in between publishes them exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import torch
from confluent_kafka import Message

from modyn_stream.artifacts import ArtifactError
from modyn_stream.evaluation.inputs import KeptInputs, Samples, decoding_key
from modyn_stream.evaluation.metrics import compute, loss, metric_name
from modyn_stream.evaluation.windows import Window, offset_windows, windows_for
from modyn_stream.events import DecodedEvent
from modyn_stream.ingest.watermark import END_OF_TIME, PartitionProgress, global_watermark
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import read_topic
from modyn_stream.kafka.exceptions import TopicError
from modyn_stream.kafka.producer import OutgoingRecord
from modyn_stream.kafka.stage import TransactionalStage
from modyn_stream.kafka.topics import TopicAdmin, TopicNames
from modyn_stream.kafka.transactions import produce_in_transaction, transactional_producer
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.registry import registered_pipeline
from modyn_stream.pipeline.schema.evaluation import BetweenTwoTriggersEvalStrategy, EvalHandler, OffsetEvalStrategy
from modyn_stream.pipeline.trust import NOBODY, CodeTrust, UntrustedCodeError
from modyn_stream.selection.manifest import SCHEMA, numeric
from modyn_stream.training.decoders import data_decoder
from modyn_stream.training.exceptions import TrainingError
from modyn_stream.training.fetch import PayloadFetchers
from modyn_stream.training.labels import class_count, keep_classes
from modyn_stream.training.loader import ChunkLoader
from modyn_stream.training.model_store import load_model
from modyn_stream.training.models import model_with_weights

log = logging.getLogger(__name__)
AFTER_PIPELINE = ("modyn.execution_time", b"after_pipeline")  # header marking after_pipeline events
COLUMNS = ("pipeline_id", "model_id", "trigger_index", "dataset", "window_start", "window_end", "metric", "value",
           "num_samples", "created_at")  # fmt: skip


class EvaluatorService(TransactionalStage):
    stage = "evaluator"
    consumes = "ModelVersionEvent"
    max_handle_s = 6 * 3600  # scoring one model on large windows may take long

    def __init__(
        self,
        settings: KafkaSettings,
        store: MetadataStore,
        *,
        instance: str = "0",
        cache_bytes: int = 512 << 20,
        trust: CodeTrust = NOBODY,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        super().__init__(settings, TopicNames(settings.namespace).models, instance=instance)
        self.store = store
        self.fetchers = PayloadFetchers(settings, self.codec, cache_bytes)
        self.inputs = KeptInputs(store, cache_bytes)  # decoded inputs, for the next model
        self.admin = TopicAdmin(settings)
        self.progress = progress
        self.trust = trust  # the code pipelines may name that this process's operator trusts
        self.rows_written = 0
        self.left_out: list[str] = []  # the last model's evaluation samples whose labels it cannot take
        store.migrate()

    def handle(self, msg: Message, decoded: DecodedEvent) -> list[OutgoingRecord] | OutgoingRecord:
        event = decoded.record
        pid = event["pipeline_id"]
        config = registered_pipeline(self.store, pid)
        if config is None:
            return self.dead_letter(msg, f"model {event['model_id']}: pipeline {pid} is not registered")
        try:
            rows = self.evaluate(config, event, "after_training")
        except (TrainingError, ArtifactError, UntrustedCodeError) as exc:
            return self.dead_letter(msg, f"model {event['model_id']}: {exc}")
        notes = [self.dead_letter(msg, f"model {event['model_id']}: {note}") for note in self.left_out]
        return notes + [self._record(r) for r in rows]

    def ready(self, msg: Message, decoded: DecodedEvent) -> bool:
        """Whether every window this model is scored on is complete: the watermark of its dataset has passed
        the window's end, or the stream has ended. Which windows those are must be known too: `active` needs
        the next trigger's boundary, BetweenTwoTriggers the whole stream. So the same stream gives the same
        rows however fast ingest, training and evaluation run."""
        event = decoded.record
        config = registered_pipeline(self.store, event["pipeline_id"])
        handlers = _handlers(config, "after_training") if config else []
        if not handlers:
            return True  # nothing to wait for (an unregistered pipeline is a dead letter at once)
        datasets = {config.data.dataset_id, *(d for h in handlers for d in h.datasets)}
        watermarks = {d: self.watermark(d) for d in datasets}
        ended = {d for d, mark in watermarks.items() if mark == END_OF_TIME}
        whole = [h for h in handlers if isinstance(h.strategy, BetweenTwoTriggersEvalStrategy)]
        if whole and not {config.data.dataset_id, *(d for h in whole for d in h.datasets)} <= ended:
            return False
        if any(h.models == "active" for h in handlers) and config.data.dataset_id not in ended:
            index = event["trigger_index"] + 1
            if not self.store.query(
                "SELECT count() FROM triggers FINAL WHERE pipeline_id = {p:String} AND trigger_index = {i:UInt32}",
                {"p": event["pipeline_id"], "i": index},
            )[0][0]:
                return False  # the windows it serves end at the next trigger's boundary
        try:
            jobs = self._windows(config, handlers, event["pipeline_id"], event["trigger_index"])
        except TrainingError:
            return True  # its trigger is not recorded: `handle` makes it a dead letter
        for dataset, windows in jobs.items():
            mark = watermarks[dataset]
            if windows and (mark is None or mark < max(end for _, end in windows)):
                return False
        return True

    def watermark(self, dataset: str) -> int | None:
        """The event time up to which `dataset` is in ClickHouse (END_OF_TIME once its stream ended), from
        `ingest_progress`, which the ingest writes after each insert."""
        topic = self.names.samples(dataset)
        try:
            partitions = {(topic, p) for p in self.admin.partitions(topic)}
        except TopicError:
            return None  # no data yet
        rows = self.store.query(
            "SELECT topic, kafka_partition, next_offset, toUnixTimestamp64Milli(max_event_time), end_of_stream, "
            "toUnixTimestamp64Milli(updated_at) FROM ingest_progress FINAL WHERE topic = {t:String}",
            {"t": topic},
        )
        progress = [PartitionProgress(t, p, o, m, bool(e), u) for t, p, o, m, e, u in rows]
        return global_watermark(progress, partitions, int(time.time() * 1000), idle_timeout_ms=None)

    def evaluate_pipeline(self, config: PipelineConfig, pid: str) -> int:
        """Run the `after_pipeline` handlers over every stored model of the pipeline and publish their
        events, unless that was done before; return how many metric values were published now."""
        if not _handlers(config, "after_pipeline"):
            return 0  # nothing to publish, so no need to read the topic for the marker
        if self._after_pipeline_published(pid):
            return 0
        rows = [row for event in self._stored_models(pid) for row in self.evaluate(config, event, "after_pipeline")]
        if rows:
            records = [self._record(r, [AFTER_PIPELINE]) for r in rows]
            producer = transactional_producer(
                self.settings, f"{self.settings.namespace}.evaluator.after-pipeline.{pid}"
            )
            produce_in_transaction(producer, records, f"evaluator: after_pipeline events of {pid}")
        return len(rows)

    def evaluate_manually(self, config: PipelineConfig, pid: str, handler: str) -> int:
        """Run one `execution_time: manual` handler over every stored model of the pipeline; its rows go to
        ClickHouse `evaluations` (a rerun replaces them). Return how many metric values were written."""
        manual = [h.name for h in _handlers(config, "manual")]
        if handler not in manual:
            raise TrainingError(
                f"pipeline {pid} has no manual evaluation handler {handler!r}; manual handlers: {manual or 'none'}"
            )
        return sum(len(self.evaluate(config, event, "manual", handler)) for event in self._stored_models(pid))

    def _stored_models(self, pid: str) -> list[dict]:
        """The pipeline's model versions in trigger order, as the parts of ModelVersionEvents `evaluate` reads."""
        names = ("pipeline_id", "trigger_index", "model_id", "model_uri", "model_sha256")
        rows = self.store.query(
            f"SELECT {', '.join(names)} FROM models FINAL WHERE pipeline_id = {{p:String}} ORDER BY trigger_index",
            {"p": pid},
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    def _after_pipeline_published(self, pid: str) -> bool:
        messages = read_topic(self.settings, self.names.evaluations, f"{self.settings.namespace}.evaluator-recovery")
        return any(m.key() == pid.encode() and AFTER_PIPELINE in (m.headers() or []) for m in messages)

    def _record(self, row: dict, headers: list[tuple[str, bytes]] | None = None) -> OutgoingRecord:
        return OutgoingRecord(
            self.names.evaluations, self.codec.encode("EvaluationEvent", row), key=row["pipeline_id"], headers=headers
        )

    def evaluate(self, config: PipelineConfig, event: dict, execution_time: str, only: str | None = None) -> list[dict]:
        """Score one model on every window its handlers (or handler `only`) give it; write and return the rows."""
        handlers = [h for h in _handlers(config, execution_time) if only is None or h.name == only]
        self.left_out = []
        if not handlers:
            return []
        jobs = self._windows(config, handlers, event["pipeline_id"], event["trigger_index"])
        if not any(jobs.values()):
            return []
        state = load_model(event["model_uri"], event["model_sha256"])[0]
        model = model_with_weights(config.model.id, config.model.config, state, trust=self.trust)
        device = torch.device(config.evaluation.device)
        model.to(device).eval()
        datasets = {d.dataset_id: d for d in config.evaluation.datasets}
        classification = config.training.optimization_criterion.name == "CrossEntropyLoss"
        rows, now = [], int(time.time() * 1000)
        for dataset, windows in jobs.items():
            spec = datasets[dataset]
            data = spec if spec.decoder is not None else config.data  # its own decoder, else the pipeline's
            decoder = data_decoder(data, trust=self.trust, seed=event["trigger_index"])
            key = decoding_key(data, class_count(config), event["trigger_index"])
            times, labels, logits = self._predict(
                model, decoder, key, dataset, windows, spec.batch_size, device, class_count(config)
            )
            for start, end in sorted(windows):
                mask = torch.from_numpy((times >= start) & (times < end))
                count = int(mask.sum())
                if count == 0:
                    continue  # no data in this window: nothing to score
                scores = {metric_name(m): compute(m, logits[mask], labels[mask]) for m in spec.metrics}
                if classification:
                    scores["loss"] = loss(logits[mask], labels[mask])
                for metric, value in scores.items():
                    rows.append({
                        "pipeline_id": event["pipeline_id"], "model_id": event["model_id"],
                        "trigger_index": event["trigger_index"], "dataset": dataset, "window_start": start,
                        "window_end": end, "metric": metric, "value": value, "num_samples": count, "created_at": now,
                    })  # fmt: skip
        if rows:
            self.store.insert("evaluations", {c: [r[c] for r in rows] for c in COLUMNS})
            self.rows_written += len(rows)
        self.progress(f"model {event['model_id']}: {len(rows)} metric values")
        return rows

    def _windows(self, config: PipelineConfig, handlers: list[EvalHandler], pid: str, index: int) -> dict:
        triggers = {
            i: (t, key)
            for i, t, key in self.store.query(
                "SELECT trigger_index, toUnixTimestamp64Milli(boundary_event_time), boundary_key FROM triggers FINAL "
                "WHERE pipeline_id = {p:String} ORDER BY trigger_index",
                {"p": pid},
            )
        }
        boundaries = {i: t for i, (t, _) in triggers.items()}
        if index not in boundaries:
            raise TrainingError(f"trigger {pid}#{index} is not recorded in ClickHouse triggers")
        mine, before, after = boundaries[index], boundaries.get(index - 1), boundaries.get(index + 1)
        jobs: dict[str, set[Window]] = {}
        ranges = {dataset: self._time_range(dataset) for handler in handlers for dataset in handler.datasets}
        trained = None  # the model's training interval, for Offset handlers: read once
        for handler in handlers:
            for dataset in handler.datasets:
                first, last = ranges[dataset]
                if first is None:
                    jobs.setdefault(dataset, set())
                    continue
                if isinstance(handler.strategy, OffsetEvalStrategy):  # this model's own windows
                    trained = trained or self._training_interval(config.data.dataset_id, triggers, index)
                    jobs.setdefault(dataset, set()).update(offset_windows(handler.strategy.offsets, *trained))
                    continue
                windows = windows_for(handler.strategy, sorted(boundaries.values()), first, last)
                jobs.setdefault(dataset, set()).update(
                    w for w in windows if _scored(handler.models, w, mine, before, after)
                )
        return jobs

    def _training_interval(self, dataset: str, triggers: dict, index: int) -> tuple[int, int]:
        """The event times (ms) of the first and the last sample of trigger `index`'s data; `triggers` maps each
        trigger to its boundary (event time, key)."""
        end_time, end_key = triggers[index]
        after = ""
        params = {"d": dataset, "t": end_time, "k": end_key}
        if index - 1 in triggers:
            after = " AND (event_time, key) > (fromUnixTimestamp64Milli({pt:Int64}), {pk:String})"
            params |= {"pt": triggers[index - 1][0], "pk": triggers[index - 1][1]}
        (first,), = self.store.query(
            "SELECT toUnixTimestamp64Milli(min(event_time)) FROM samples WHERE dataset = {d:String} "
            f"AND (event_time, key) <= (fromUnixTimestamp64Milli({{t:Int64}}), {{k:String}}){after}",
            params,
        )  # fmt: skip
        return first if first is not None else end_time, end_time

    def _time_range(self, dataset: str) -> tuple[int | None, int | None]:
        (count, first, last), = self.store.query(
            "SELECT count(), toUnixTimestamp64Milli(min(event_time)), toUnixTimestamp64Milli(max(event_time)) "
            "FROM samples WHERE dataset = {d:String}",
            {"d": dataset},
        )  # fmt: skip
        return (first, last) if count else (None, None)

    def _predict(self, model, decoder, key: str, dataset: str, windows: set[Window], batch_size: int, device,
                 classes):  # fmt: skip
        """(event times, labels, model outputs) of every labelled sample in any of the windows whose label is one
        of the model's `classes` (the others are noted in `left_out`); inputs decoded as `key` says are read
        once for all models (evaluation/inputs.py)."""
        start, end = min(w[0] for w in windows), max(w[1] for w in windows)
        read = lambda s, e: self._read(decoder, dataset, s, e, classes)  # noqa: E731
        samples = self.inputs.samples(dataset, key, start, end, read)
        if samples.note is not None:
            self.left_out.append(f"{dataset}: {samples.note}")
        outputs = []
        with torch.inference_mode():
            for x in samples.inputs:
                for i in range(0, len(x), batch_size):
                    outputs.append(model(x[i : i + batch_size].to(device)).float().cpu())
        logits = torch.cat(outputs).reshape(len(samples.times), -1) if outputs else torch.zeros(0, 1)
        return samples.times, samples.labels, logits

    def _read(self, decoder, dataset: str, start: int, end: int, classes) -> Samples:
        """The labelled samples of [start, end) whose label is one of `classes`, decoded as they are fetched."""
        sql = (
            "SELECT kafka_partition, kafka_offset, key, label, toFloat32(1.0) AS weight, "
            "toUnixTimestamp64Milli(event_time) AS t FROM samples WHERE dataset = {d:String} AND label IS NOT NULL AND "
            "event_time >= fromUnixTimestamp64Milli({s:Int64}) AND event_time < fromUnixTimestamp64Milli({e:Int64}) "
            "ORDER BY event_time, key"  # the stream's order: the same sums however it is partitioned
        )
        with self.store.arrow_batches(sql, {"d": dataset, "s": start, "e": end}) as stream:
            batches = [batch for batch in stream if batch.num_rows]
        table, note = keep_classes(pa.Table.from_batches(batches), classes) if batches else (None, None)
        if table is None or table.num_rows == 0:
            return Samples(np.zeros(0, np.int64), torch.zeros(0, dtype=torch.long), [], note)
        columns = [table[name].cast(kind) for name, kind in zip(SCHEMA.names, SCHEMA.types, strict=True)]
        manifest = pa.Table.from_arrays(columns, schema=SCHEMA)
        loader = ChunkLoader(self.fetchers[dataset], decoder, manifest)
        return Samples(numeric(table["t"]), torch.from_numpy(numeric(manifest["label"])), _inputs(loader), note)

    def close(self, abandon: bool = False) -> None:
        super().close(abandon)
        self.fetchers.close()


def _inputs(loader: ChunkLoader) -> Iterator[torch.Tensor]:
    try:
        for x, _, _ in loader:
            yield x
    finally:
        loader.close()


def _handlers(config: PipelineConfig, execution_time: str) -> list[EvalHandler]:
    """The pipeline's evaluation handlers that run at `execution_time`."""
    return [h for h in (config.evaluation.handlers if config.evaluation else []) if h.execution_time == execution_time]


def _scored(models: str, window: Window, mine: int, before: int | None, after: int | None) -> bool:
    """Whether a model with trigger boundary `mine` is scored on `window` under the handler's `models`."""
    start, end = window
    if models == "matrix":
        return True
    if models == "active":  # the windows it serves: from its boundary until the next model's
        return start >= mine and (after is None or start < after)
    return start <= mine and (before is None or end > before)  # training: overlaps its new training data
