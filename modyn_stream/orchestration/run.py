"""`modyn-stream run pipeline.yaml`: every service in one process, from replay to report.

The services are the same classes that run alone (`modyn-stream service NAME`); here one loop
steps them in turn, so each event passes through the same Kafka topics and transactions. A run
owns a directory (`<runs>/<pipeline name>/`): the embedded ClickHouse, the artifacts, the report,
and `run.json` naming its Kafka namespace, so running again resumes where it stopped (the
services' committed offsets and ClickHouse state say where) and `fresh=True` starts over in a new
namespace (deleting the old one's topics). The run ends once the replay is ingested, the trigger
service has seen the end of the stream, and every trigger has been selected, trained and evaluated.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.evaluation.service import EvaluatorService
from modyn_stream.exceptions import ModynStreamError
from modyn_stream.ingest.service import IngestService
from modyn_stream.kafka.config import KafkaSettings
from modyn_stream.kafka.producer import EventProducer
from modyn_stream.kafka.topics import TopicAdmin
from modyn_stream.metadata import MetadataStore
from modyn_stream.orchestration.replay_process import ReplayProcess
from modyn_stream.orchestration.restart import Restarts, close_all
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.registry import register_pipeline
from modyn_stream.pipeline.trust import NOBODY, CodeTrust
from modyn_stream.selection.service import SelectorService
from modyn_stream.training.loop import preload_optimizers
from modyn_stream.training.service import TrainerService
from modyn_stream.triggers.service import TriggerService

log = logging.getLogger(__name__)
POLL_S = 0.02  # how long each stage waits for input per round: they share one loop
QUIET_S = 30.0  # a run whose stages all idle this long after the stream ended stops, saying what is missing


@dataclass
class RunProgress:
    replayed: int = 0
    ingested: int = 0
    triggers: int = 0
    models: int = 0
    evaluated: int = 0
    last_loss: float | None = None
    dead_letters: int = 0
    phase: str = "starting"
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    pipeline_id: str
    run_dir: Path
    store: MetadataStore
    progress: RunProgress
    seconds: float


def run_directory(config: PipelineConfig, runs: Path) -> Path:
    """`<runs>/<pipeline name>`: always directly under `runs` (validation keeps names to one component)."""
    run_dir = runs / config.pipeline.name
    if run_dir.resolve().parent != runs.resolve():
        raise ModynStreamError(f"pipeline.name {config.pipeline.name!r} does not name a directory under {runs}")
    return run_dir


def run_store(run_dir: Path) -> MetadataStore:
    """The run's embedded ClickHouse."""
    return MetadataStore(f"chdb://{(run_dir / 'metadata').resolve()}", "modyn")


def run_state(run_dir: Path, settings: KafkaSettings, fresh: bool) -> dict:
    """The run's state (its Kafka namespace, whether the replay is done), made anew when there is none.

    `fresh` discards an earlier run: its directory, and its namespace's topics and consumer groups, which
    nothing reads once the directory is gone and which would otherwise stay on the broker for good."""
    state_file = run_dir / "run.json"
    if fresh and run_dir.exists():
        if state_file.exists():
            TopicAdmin(settings).delete_namespace(json.loads(state_file.read_text())["namespace"])
        shutil.rmtree(run_dir)
    if state_file.exists():
        return json.loads(state_file.read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    state = {"namespace": f"{settings.namespace}-run-{uuid.uuid4().hex[:8]}", "replayed": False}
    state_file.write_text(json.dumps(state))
    return state


def _save_state(run_dir: Path, state: dict) -> None:
    (run_dir / "run.json").write_text(json.dumps(state))


class _Services:
    """The run's stages, stepped in one loop. After a broker outage they are all rebuilt from their
    committed state; `carried` keeps the counts of the instances before, so the run's totals go on."""

    def __init__(self, settings: KafkaSettings, store: MetadataStore, artifacts: ArtifactStore, handshakes, carried,
                 trust: CodeTrust):  # fmt: skip
        self.settings, self.store, self.artifacts, self.trust = settings, store, artifacts, trust
        self.handshakes = handshakes
        self.carried = carried  # evaluated, selector/trainer/evaluator dead letters of earlier instances
        self.closed = False
        self.ingest: IngestService | None = None
        self.trigger = TriggerService(settings, store, trust=trust)
        self.selector = SelectorService(settings, store, artifacts)
        self.trainer = TrainerService(settings, store, artifacts, trust=trust)
        self.evaluator = EvaluatorService(settings, store, trust=trust)
        # Each stage's step, once its handshake is done; none waits longer than POLL_S for input.
        steps = [(self.trigger, self.trigger.step)]
        steps += [(s, partial(s.step, POLL_S)) for s in (self.selector, self.trainer, self.evaluator)]
        self._starting = [(handshakes.submit(stage.start), step) for stage, step in steps]

    def add_ingest(self, producer: EventProducer | None = None) -> None:
        """After the replay: the ingest subscribes by pattern and sees the samples topic at once."""
        self.ingest = IngestService(self.settings, self.store, max_wait_s=POLL_S, producer=producer)

    def step(self) -> int:
        return self.ingest.step() + sum(step() for handshake, step in self._starting if _done(handshake))

    def counts(self) -> dict[str, int]:
        """Totals so far, this instance's and the ones before."""
        mine = {
            "evaluated": self.evaluator.done,
            "selector_dead": self.selector.dead_letters,
            "trainer_dead": self.trainer.dead_letters,
            "evaluator_dead": self.evaluator.dead_letters,
        }
        return {name: self.carried.get(name, 0) + value for name, value in mine.items()}

    def all(self) -> list:
        """The stages still open."""
        stages = (self.ingest, self.trigger, self.selector, self.trainer, self.evaluator)
        return [] if self.closed else [s for s in stages if s is not None]

    def rebuilt(self, failure: Exception, restarts: Restarts, stop: Callable[[], bool]) -> _Services | None:
        """After `failure`: these stages closed without waiting on the broker, and new ones once it answers
        (None if the run is stopped meanwhile). Raises `failure` if it was not the broker's."""
        close_all(reversed(self.all()), abandon=True)
        self.closed = True
        while True:
            restarts.recover(failure)
            if stop():
                return None
            try:
                fresh = _Services(self.settings, self.store, self.artifacts, self.handshakes, self.counts(), self.trust)
                fresh.add_ingest()
                return fresh
            except Exception as exc:  # the broker went away again while the stages started
                failure = exc


def run_pipeline(
    config: PipelineConfig,
    settings: KafkaSettings,
    runs: Path,
    *,
    config_dir: Path = Path("."),
    fresh: bool = False,
    replay_data: bool = True,
    update: Callable[[RunProgress], None] = lambda _: None,
    stop: Callable[[], bool] = lambda: False,
    trust: CodeTrust = NOBODY,
) -> RunResult:
    """Run the pipeline to its last evaluation; `settings` must reach a broker (see kafka.connect), and the
    trainer and evaluator import only code the operator trusts (`trust`).

    A broker that goes away mid-run stops no stage for good: once it answers again, every stage is rebuilt
    from its committed state and the run goes on (see `restart.py`)."""
    started = time.monotonic()
    run_dir = run_directory(config, runs)
    state = run_state(run_dir, settings, fresh)
    settings = settings.model_copy(update={"namespace": state["namespace"]})
    to_replay = replay_data and config.replay is not None and not state["replayed"]
    # First the replay's own process, before this run has a thread or a client: it generates and publishes
    # the data while the run sets up. Setup mostly waits on the broker and ClickHouse: torch's lazy import
    # for the first optimizer step goes on meanwhile, and so do the stages' Kafka handshakes (transactional
    # ids, consumer groups), one at a time: the broker's transaction coordinator answers concurrent ones
    # 0.5 s later.
    replayer = ReplayProcess(settings, config.data.dataset_id, config.replay, config_dir) if to_replay else None
    preload = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-preload")
    handshakes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-handshake")
    services: _Services | None = None
    finished = False
    progress = RunProgress()

    def waiting(line: str) -> None:
        log.warning("%s", line)
        progress.phase = "waiting for Kafka"
        update(progress)

    restarts = Restarts(settings, "run", stopping=stop, say=waiting)
    try:
        preload.submit(preload_optimizers)
        # One producer for registration and ingest: a new one waits up to 0.5 s for its producer id
        # (librdkafka's timer), a wait this one spends while ClickHouse starts.
        producer = EventProducer(settings)
        store = run_store(run_dir)
        store.migrate()
        artifacts = ArtifactStore(run_dir / "artifacts")
        dataset = config.data.dataset_id
        pid = register_pipeline(config, settings, store, producer)
        services = _Services(settings, store, artifacts, handshakes, {}, trust)
        if replayer is not None:
            progress.phase = "replaying"
            done = False
            while not done:  # Ctrl-C waits for the replay, as it did in one process
                done = replayer.poll(timeout_s=POLL_S)
                progress.replayed = replayer.replayed
                update(progress)
            progress.notes += replayer.result.notes
            state["replayed"] = True
            _save_state(run_dir, state)
        services.add_ingest(producer)
        progress.phase = "running"
        evaluated_before = _count(store, "SELECT count(DISTINCT model_id) FROM evaluations WHERE pipeline_id = "
                                  "{p:String}", pid)  # fmt: skip
        quiet_since, counted = None, False
        while not stop():
            try:
                worked = services.step()
                ended = services.trigger.stream_ended(dataset)
                restarts.succeeded()
            except Exception as exc:
                services = services.rebuilt(exc, restarts, stop) or services  # closed if stopped meanwhile
                progress.phase = "running"
                quiet_since, counted = None, False  # waiting for the broker was not idling
                continue
            ingest, counts = services.ingest, services.counts()
            progress.ingested = sum(s.samples_ingested for s in ingest.partition_states() if s.dataset == dataset)
            if worked or not counted:  # triggers and models only change when a stage did work
                progress.triggers = _count(store, "SELECT count() FROM triggers FINAL WHERE pipeline_id = {p:String}",
                                           pid)  # fmt: skip
                progress.models = _count(store, "SELECT count() FROM models FINAL WHERE pipeline_id = {p:String}", pid)
                counted = True
            progress.evaluated = evaluated_before + counts["evaluated"]
            progress.dead_letters = counts["selector_dead"] + counts["trainer_dead"] + counts["evaluator_dead"]
            if services.trainer.last_event:
                progress.last_loss = services.trainer.last_event["final_loss"]
            update(progress)
            trained = progress.models + counts["selector_dead"] + counts["trainer_dead"] >= progress.triggers
            deciding = bool(services.trigger.batched.waiting)  # a decision waits for a model just trained
            if ended and trained and not deciding and progress.evaluated + counts["evaluator_dead"] >= progress.models:
                break
            if worked:
                quiet_since = None
            elif ended:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > QUIET_S:
                    progress.notes.append(
                        f"stopped after {QUIET_S:.0f} s without work: {progress.triggers} triggers, "
                        f"{progress.models} models, {progress.evaluated} evaluated"
                    )
                    break
        else:
            progress.notes.append("interrupted: run again to resume")
        progress.notes += services.trigger.batched.failed.values()
        while not stop() and config.evaluation:
            progress.phase = "evaluating (after pipeline)"
            update(progress)
            try:
                services.evaluator.evaluate_pipeline(config, pid)
                break
            except Exception as exc:
                services = services.rebuilt(exc, restarts, stop) or services
        if restarts.count:
            progress.notes.append(f"Kafka went away {restarts.count} time(s); every stage resumed from its commits")
        progress.phase = "done"
        update(progress)
        finished = True
    finally:
        if replayer is not None:
            replayer.close()
        for pool in (preload, handshakes):
            pool.shutdown(cancel_futures=True)  # waits for work under way
        close_all(reversed(services.all()) if services else [], raise_first=finished)
    return RunResult(pid, run_dir, store, progress, time.monotonic() - started)


def _done(handshake: Future) -> bool:
    """Whether a stage's Kafka handshake is done (raising its error if it failed)."""
    return handshake.done() and handshake.result() is None


def _count(store: MetadataStore, sql: str, pid: str) -> int:
    return int(store.query(sql, {"p": pid})[0][0])
