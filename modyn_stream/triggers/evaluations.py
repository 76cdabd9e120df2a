"""The trigger service's side of batched triggers (DataDrift, Performance): their state per pipeline, recorded
on `{ns}.trigger-evaluations`.

Each decision is one TriggerEvaluation record, committed in the same transaction as the TriggerEvent when it
fires, so on start the last record of each pipeline is exactly where its policy stood (windows, warmup,
criteria) when its last decision, fired or not, was committed: a restart neither repeats nor skips one.
Torch and the metrics load with the first such pipeline only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace

from modyn_stream.events import EventCodec, EventDecodeError
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.consumer import read_topic
from modyn_stream.kafka.producer import OutgoingRecord
from modyn_stream.kafka.topics import TopicNames
from modyn_stream.metadata import MetadataStore
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.trust import CodeTrust, UntrustedCodeError
from modyn_stream.training.exceptions import TrainingError

log = logging.getLogger(__name__)


class BatchedEvaluations:
    def __init__(self, settings: KafkaSettings, store: MetadataStore, codec: EventCodec, trust: CodeTrust) -> None:
        self.settings, self.store, self.codec, self.trust = settings, store, codec, trust
        self.topic = TopicNames(settings.namespace).trigger_evaluations
        self.states: dict = {}  # pipeline -> PolicyState after its last committed decision
        self.waiting: set[str] = set()  # pipelines whose next decision waits for a model version
        self.failed: dict[str, str] = {}  # pipelines whose decision raised (a model or decoder that does not fit)
        self._pending: dict[str, dict] = {}  # the record of each pipeline's decision being committed
        self._judges: dict[type, object] = {}  # per policy: the object deciding it
        self._fetchers = None

    def recover(self) -> None:
        from modyn_stream.triggers.batched import PolicyState

        recorded = []
        for msg in read_topic(self.settings, self.topic, f"{self.settings.namespace}.trigger-evaluation-recovery"):
            try:
                decoded = self.codec.decode(msg.value())
            except EventDecodeError as exc:
                log.warning("%s[%d]@%d: skipped: %s", msg.topic(), msg.partition(), msg.offset(), exc)
                continue
            if decoded.name == "TriggerEvaluation":
                recorded.append(decoded.record)
        last = {r["pipeline_id"]: r for r in sorted(recorded, key=lambda r: r["evaluation_index"])}
        self._project(recorded)  # the rows a crash after a commit left out
        self.states = {pid: PolicyState.from_json(record["state"]) for pid, record in last.items()}

    def next(self, pid: str, config: PipelineConfig, index, last_trigger: int):
        """The pipeline's next decision, or None (no evaluation point yet, waiting for a model version, or the
        pipeline's decisions failed: see `failed`).

        A decision uses the model of the last trigger whose training did not fail; with none (every training so
        far failed), it is a first decision again, which fires."""
        from modyn_stream.triggers.batched import WAITING, PolicyState, with_trigger

        if pid in self.failed:
            return None
        judge = self.judge(config.trigger)
        state = self.states.get(pid, PolicyState())
        model_index = self._data.usable_model(pid, last_trigger if last_trigger >= 0 else None)
        if model_index is None and last_trigger >= 0:
            state = replace(state, triggered_once=False)
        try:
            decision = with_trigger(judge.evaluate(pid, config, index, state, model_index))
        except (TrainingError, UntrustedCodeError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            self.failed[pid] = f"trigger {pid}: its decision after {state.point} failed, so it decides no more " \
                               f"until the trigger service restarts: {exc}"  # fmt: skip
            log.error("%s", self.failed[pid])
            return None
        if decision is WAITING:
            if pid not in self.waiting:
                log.info("trigger %s: the next decision waits for the model of trigger %s", pid, model_index)
            self.waiting.add(pid)
            return None
        self.waiting.discard(pid)
        return decision

    def record(self, pid: str, decision, trigger_index: int | None) -> OutgoingRecord:
        """The TriggerEvaluation of `decision`, to commit (with its TriggerEvent if it fired), then `committed`."""
        event = self._pending[pid] = {
            "pipeline_id": pid,
            "evaluation_index": decision.state.evaluations - 1,
            "boundary_event_time": decision.point.event_time,
            "boundary_key": decision.point.key,
            "phase": decision.phase,
            "fired": decision.fired,
            "trigger_index": trigger_index,
            "model_trigger_index": decision.model_index,
            "reference_samples": decision.reference_samples,
            "current_samples": decision.current_samples,
            "results": [{"metric": name, **asdict(outcome)} for name, outcome in decision.results.items()],
            "skipped_keys": list(decision.skipped),
            "state": decision.state.to_json(),
            "evaluated_at": int(time.time() * 1000),
        }
        return OutgoingRecord(self.topic, self.codec.encode("TriggerEvaluation", event), key=pid)

    def committed(self, pid: str, decision) -> None:
        self._project([self._pending.pop(pid)])
        self.states[pid] = decision.state
        log.info("decision %s @%s: %s%s", pid, decision.point, decision.reason, " (fired)" if decision.fired else "")
        if decision.skipped:
            log.warning("decision %s @%s: left out %d unreadable samples: %s", pid, decision.point,
                        len(decision.skipped), ", ".join(decision.skipped[:10]))  # fmt: skip

    def _project(self, records: list[dict]) -> None:
        """Their ClickHouse `trigger_evaluations` rows (keyed by pipeline and index: a repeat replaces one)."""
        if not records:
            return
        columns = (
            "pipeline_id",
            "evaluation_index",
            "boundary_event_time",
            "boundary_key",
            "phase",
            "fired",
            "trigger_index",
            "model_trigger_index",
            "reference_samples",
            "current_samples",
            "skipped_keys",
            "evaluated_at",
        )
        rows = {name: [r[name] for r in records] for name in columns}
        for column, name in (("metric", "metric"), ("value", "value"), ("metric_fired", "fired"),
                             ("threshold", "threshold")):  # fmt: skip
            rows[column] = [[result[name] for result in r["results"]] for r in records]
        self.store.insert("trigger_evaluations", rows)

    def judge(self, policy):
        """The object that decides `policy`'s kind of trigger (made once, with the window reader they share)."""
        kind = type(policy)
        if kind not in self._judges:
            from modyn_stream.pipeline.schema.drift import DataDriftTrigger
            from modyn_stream.pipeline.schema.performance import PerformanceTrigger
            from modyn_stream.pipeline.schema.triggers import EnsembleTrigger
            from modyn_stream.training.fetch import PayloadFetchers
            from modyn_stream.triggers.cost import CostJudge
            from modyn_stream.triggers.drift.trigger import DriftDetector
            from modyn_stream.triggers.ensemble import EnsembleJudge
            from modyn_stream.triggers.performance import PerformanceJudge
            from modyn_stream.triggers.window_data import WindowData

            if self._fetchers is None:
                self._fetchers = PayloadFetchers(self.settings, self.codec, 256 << 20)
                self._data = WindowData(self.store, self._fetchers, self.trust)
            judges = {DataDriftTrigger: DriftDetector, PerformanceTrigger: PerformanceJudge}
            if kind is EnsembleTrigger:
                self._judges[kind] = EnsembleJudge(self.judge, self.trust)
            else:
                self._judges[kind] = judges.get(kind, CostJudge)(self._data)
        return self._judges[kind]

    def close(self) -> None:
        if self._fetchers is not None:
            self._fetchers.close()
