"""The trigger service: evaluates every registered pipeline's trigger and emits TriggerEvents.

Exactly once, without coordinating Kafka and ClickHouse: `{ns}.triggers` is the record of what
fired. Each firing is one Kafka transaction; on start the service first registers its
transactional id, which fences a zombie instance, then reads that topic back (read_committed),
so nothing can be committed after it has read, to learn each pipeline's last trigger,
its boundary and the ingest snapshot it saw, then continues from there. The ClickHouse
`triggers` rows are a projection written after each commit and repaired from the topic on start
(same rows, deduplicated by token), so a crash at any point neither skips nor repeats a trigger.

Batched triggers (drift, performance, cost, and ensembles over them) decide at evaluation points; each
decision commits with the policy's state on `{ns}.trigger-evaluations` (see evaluations.py).

A firing is a deterministic function of the samples below the watermark and the previous
trigger (and, for batched triggers, of the model versions their decisions wait for): evaluations see
only samples whose offsets precede the progress records the watermark came from, and event times strictly
below it (see `sample_index.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.ingest.watermark import END_OF_TIME, global_watermark
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import read_topic
from modyn_stream.kafka.exceptions import TopicError
from modyn_stream.kafka.producer import EventProducer, OutgoingRecord
from modyn_stream.kafka.topics import TopicAdmin, TopicNames, project_topic_specs
from modyn_stream.kafka.transactions import init_transactions, produce_in_transaction
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.registry import registered_pipelines
from modyn_stream.pipeline.schema.triggers import is_batched
from modyn_stream.pipeline.trust import NOBODY, CodeTrust
from modyn_stream.triggers.evaluations import BatchedEvaluations
from modyn_stream.triggers.policies import START, Boundary, Firing, next_firing
from modyn_stream.triggers.progress import ProgressTracker
from modyn_stream.triggers.record import record_trigger
from modyn_stream.triggers.sample_index import ClickHouseSampleIndex

log = logging.getLogger(__name__)


@dataclass
class TriggerState:
    """Where a pipeline stands: the next trigger index, the last boundary, the snapshot it saw."""

    next_index: int = 0
    boundary: Boundary = START
    snapshot: dict[int, int] = field(default_factory=dict)


class TriggerService:
    def __init__(
        self,
        settings: KafkaSettings,
        store: MetadataStore,
        *,
        idle_timeout_ms: int | None = None,
        fault: Callable[[str], None] = lambda point: None,
        trust: CodeTrust = NOBODY,
    ) -> None:
        self.settings = settings
        self.names = TopicNames(settings.namespace)
        self.store = store
        self.idle_timeout_ms = idle_timeout_ms
        self.fault = fault  # crash-injection point for tests: after_commit
        self.codec = EventCodec.for_settings(settings)
        # Registered in `start`: a new producer gets its producer id up to 0.5 s after it is created.
        self.producer = EventProducer(settings, transactional_id=f"{settings.namespace}.trigger-service")
        self.admin = TopicAdmin(settings)
        self.admin.ensure(project_topic_specs(self.names))
        store.migrate()
        self.progress = ProgressTracker(settings, self.codec, f"{settings.namespace}.trigger-progress")
        self.states: dict[str, TriggerState] = {}
        self.batched = BatchedEvaluations(settings, store, self.codec, trust)
        self.fired = 0
        self._started = False
        self._start_lock = threading.Lock()

    # -- state ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Fence any older instance, then recover the state (the first `step` does it otherwise).

        Registering the transactional id first aborts or completes whatever an older instance still
        has in flight and fences it, so the TriggerEvents read next are all it will ever commit.
        """
        with self._start_lock:
            if not self._started:
                init_transactions(self.producer)
                self.states = self._recover()
                self.batched.recover()
                self._started = True

    def _recover(self) -> dict[str, TriggerState]:
        """Each pipeline's state from the committed TriggerEvents; re-project them into ClickHouse."""
        messages = read_topic(self.settings, self.names.triggers, f"{self.settings.namespace}.trigger-recovery")
        events = []
        for msg in messages:
            try:
                decoded = self.codec.decode(msg.value())
            except EventDecodeError as exc:  # not one of ours (the selector sends it to the DLQ)
                log.warning("%s[%d]@%d: skipped: %s", msg.topic(), msg.partition(), msg.offset(), exc)
                continue
            if decoded.name == "TriggerEvent":
                events.append(decoded.record)
        states: dict[str, TriggerState] = {}
        for event in sorted(events, key=lambda e: (e["pipeline_id"], e["trigger_index"])):
            states[event["pipeline_id"]] = TriggerState(
                event["trigger_index"] + 1,
                Boundary(event["boundary_event_time"], event["boundary_key"]),
                {int(p): o for p, o in event["ingest_offsets"].items()},
            )
            record_trigger(self.store, event)
        return states

    # -- evaluation ---------------------------------------------------------------------------

    def step(self) -> int:
        """Evaluate every pipeline once against the latest progress; return the number of triggers fired."""
        self.start()
        self.progress.refresh()
        fired = 0
        for pid, config in registered_pipelines(self.store).items():
            fired += self._evaluate(pid, config)
        self.fired += fired
        return fired

    def stream_ended(self, dataset: str) -> bool:
        """Whether the last step saw every partition of the dataset at its end of stream (a replay is over)."""
        topic = self.names.samples(dataset)
        try:
            partitions = self.admin.partitions(topic)
        except TopicError:
            return False
        records = [self.progress.latest.get((topic, p)) for p in partitions]
        return all(r is not None and r.end_of_stream for r in records)

    def _evaluate(self, pid: str, config: PipelineConfig) -> int:
        dataset = config.data.dataset_id
        topic = self.names.samples(dataset)
        try:
            partitions = {(topic, p) for p in self.admin.partitions(topic)}
        except TopicError:
            return 0  # no samples topic yet
        records = [self.progress.latest[key] for key in partitions if key in self.progress.latest]
        if len(records) < len(partitions):
            return 0  # a partition the ingest has not reported yet
        watermark = global_watermark(records, partitions, int(time.time() * 1000), self.idle_timeout_ms)
        if watermark is None:
            return 0
        ended = watermark == END_OF_TIME
        horizon = max((r.max_event_time for r in records if r.max_event_time is not None), default=-(2**62))
        snapshot = {r.partition: r.next_offset for r in records}
        if ended:
            index = ClickHouseSampleIndex(self.store, dataset, snapshot, None, horizon)
        else:
            index = ClickHouseSampleIndex(self.store, dataset, snapshot, watermark, watermark)
        previous = self.states.setdefault(pid, TriggerState())
        late = index.late_count(previous.boundary, previous.snapshot) if previous.next_index else 0
        fired = 0
        if is_batched(config.trigger):
            while (decision := self.batched.next(pid, config, index, self.states[pid].next_index - 1)) is not None:
                state = self.states[pid]
                if not decision.fired:
                    record = self.batched.record(pid, decision, None)
                    produce_in_transaction(self.producer, [record], f"trigger service: evaluation of {pid}")
                else:
                    count = index.count_between(state.boundary, decision.point) + late
                    extra = [self.batched.record(pid, decision, state.next_index)]
                    self._emit(pid, dataset, Firing(decision.point, decision.reason), count, watermark, snapshot, extra)
                    fired, late = fired + 1, 0
                self.batched.committed(pid, decision)
        else:
            while (firing := next_firing(config.trigger, index, self.states[pid].boundary, late)) is not None:
                count = index.count_between(self.states[pid].boundary, firing.boundary) + late
                self._emit(pid, dataset, firing, count, watermark, snapshot)
                fired, late = fired + 1, 0
        if ended and config.trigger.fire_on_end_of_stream:
            boundary = self.states[pid].boundary
            last = index.last_before(boundary, END_OF_TIME)
            if last is not None or late:
                count = index.count_between(boundary, last or boundary) + late
                self._emit(pid, dataset, Firing(last or boundary, "end of stream"), count, watermark, snapshot)
                fired += 1
        return fired

    def _emit(
        self, pid: str, dataset: str, firing: Firing, count: int, watermark: int, snapshot: dict, extra=()
    ) -> None:
        """Commit the TriggerEvent (with `extra` records: its evaluation) in one transaction, then project it."""
        state = self.states[pid]
        event = {
            "pipeline_id": pid,
            "dataset": dataset,
            "trigger_index": state.next_index,
            "boundary_event_time": firing.boundary.event_time,
            "boundary_key": firing.boundary.key,
            "num_new_samples": count,
            "reason": firing.reason,
            "watermark": None if watermark == END_OF_TIME else watermark,
            "ingest_offsets": {str(p): o for p, o in snapshot.items()},
            "fired_at": int(time.time() * 1000),
        }
        record = OutgoingRecord(self.names.triggers, self.codec.encode("TriggerEvent", event), key=pid)
        produce_in_transaction(self.producer, [record, *extra], f"trigger service: emitting {pid}#{state.next_index}")
        self.fault("after_commit")
        record_trigger(self.store, event)
        self.states[pid] = TriggerState(state.next_index + 1, firing.boundary, dict(snapshot))
        log.info("trigger %s#%d at %s: %s", pid, event["trigger_index"], firing.boundary, firing.reason)

    def close(self, abandon: bool = False) -> None:
        """`abandon`: a failed service, closed without waiting on the broker."""
        self.progress.close()
        self.batched.close()
        if abandon:
            self.producer.abandon()
        else:
            self.producer.flush()

    def __enter__(self) -> TriggerService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
