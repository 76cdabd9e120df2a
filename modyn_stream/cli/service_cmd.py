"""`modyn-stream service NAME`: one service as its own process.

Where Kafka, ClickHouse and the artifacts are comes from `--config system.yaml`, then `MODYN_*`
environment variables, then the command's own options, each overriding the one before.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import typer
from rich.markup import escape

from modyn_stream.cli._console import err, out
from modyn_stream.cli._options import Bootstrap, TrustCode

app = typer.Typer(help="Run one service as its own process (stops cleanly on Ctrl-C / SIGTERM).")

SystemFile = typer.Option(None, "--config", help="System config YAML (kafka, metadata, artifacts).")
MetadataUrl = typer.Option(
    None, "--metadata-url", envvar="MODYN_CLICKHOUSE_URL", help="chdb:///path or http(s)://host:8123"
)
Database = typer.Option(None, help="ClickHouse database [default: modyn].")
Namespace = typer.Option(None, "--namespace", envvar="MODYN_KAFKA_NAMESPACE", help="Topic namespace [default: modyn].")
Artifacts = typer.Option(
    None,
    envvar="MODYN_ARTIFACTS_ROOT",
    help="Artifact store root (manifests, models) [default: .modyn-stream/artifacts].",
)


def _system(config: Path | None, bootstrap=None, namespace=None, metadata_url=None, database=None, artifacts=None):
    """The system config file with MODYN_* variables on top, then the options given on the command line."""
    from modyn_stream.pipeline.system import load_system_config

    def given(**values) -> dict:
        return {k: v for k, v in values.items() if v is not None}

    system = load_system_config(config)
    return system.model_copy(
        update={
            "kafka": system.kafka.model_copy(update=given(bootstrap_servers=bootstrap, namespace=namespace)),
            "metadata": system.metadata.model_copy(update=given(url=metadata_url, database=database)),
            "artifacts": system.artifacts.model_copy(update=given(root=artifacts)),
        }
    )


def _store(system):
    from modyn_stream.metadata import MetadataStore

    return MetadataStore(system.metadata_url, system.metadata.database)


def _connected(system):
    from modyn_stream.kafka.connect import connected

    return connected(system.kafka, state_dir=system.state_dir / "kafka", start_local=False)


@app.command()
def ingest(
    config: Path = SystemFile,
    metadata_url: str = MetadataUrl,
    database: str = Database,
    max_batch: int = typer.Option(20_000, min=1, help="Most samples per ClickHouse insert."),
    max_wait: float = typer.Option(0.5, min=0.01, help="Longest a sample waits for its insert, in seconds."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Ingest sample metadata from {ns}.samples.* into ClickHouse, exactly once."""
    from modyn_stream.ingest.service import IngestService

    system = _system(config, bootstrap, namespace, metadata_url, database)
    store = _store(system)
    started = time.monotonic()

    def describe(service: IngestService) -> str:
        stats = service.stats
        rate = stats.samples / max(time.monotonic() - started, 1e-9)
        return (f"{stats.samples:,} samples ({rate:,.0f}/s), {stats.dead_letters:,} dead letters, "
                f"{stats.batches:,} inserts")  # fmt: skip

    _serve(
        "ingest", "waiting for samples", system,
        build=lambda settings: IngestService(settings, store, max_batch=max_batch, max_wait_s=max_wait),
        step=IngestService.step, describe=describe, finish=IngestService.flush,
    )  # fmt: skip


@app.command()
def trigger(
    config: Path = SystemFile,
    metadata_url: str = MetadataUrl,
    database: str = Database,
    interval: float = typer.Option(1.0, min=0.05, help="Seconds between evaluations."),
    idle_timeout: float = typer.Option(
        None, min=0.1, help="Seconds after which an idle partition stops holding the watermark back (off by default)."
    ),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
    trust_code: bool = TrustCode,
) -> None:
    """Evaluate every registered pipeline's trigger and emit TriggerEvents, exactly once."""
    from modyn_stream.triggers.service import TriggerService

    system = _system(config, bootstrap, namespace, metadata_url, database)
    store = _store(system)
    idle_ms = None if idle_timeout is None else int(idle_timeout * 1000)

    def step(service: TriggerService) -> int:
        started = time.monotonic()
        fired = service.step()
        time.sleep(max(0.0, interval - (time.monotonic() - started)))  # evaluation cadence
        return fired

    _serve(
        "trigger", "waiting for data", system,
        build=lambda settings: TriggerService(
            settings, store, idle_timeout_ms=idle_ms, trust=system.code_trust(trust_code)
        ),
        step=step, describe=lambda service: f"{service.fired:,} triggers fired",
    )  # fmt: skip


def _serve(name: str, waiting: str, system, *, build, step, describe, finish=None) -> None:
    """Run one service until Ctrl-C / SIGTERM, showing `describe(service)` as it works. A broker that goes
    away does not stop it: once Kafka answers again the service is rebuilt from its committed state."""
    from modyn_stream.kafka.consumer import ShutdownFlag
    from modyn_stream.orchestration.restart import Restarts, close_all

    shutdown = ShutdownFlag()
    with _connected(system) as settings, shutdown.on_signals(), err.status(f"{name}: {waiting} ...") as status:

        def say(line: str) -> None:
            err.print(escape(line))
            status.update(f"{name}: waiting for Kafka ...")

        restarts = Restarts(settings, name, stopping=lambda: shutdown.is_set, say=say)
        service, shown = None, 0.0
        try:
            while not shutdown.is_set:
                try:
                    service = service or build(settings)
                    worked = step(service)
                    restarts.succeeded()
                except Exception as exc:
                    if service is not None:
                        close_all([service], abandon=True)
                    service = None
                    restarts.recover(exc)  # raises unless Kafka was away and answers again
                    continue
                if worked or time.monotonic() - shown > 1:
                    shown = time.monotonic()
                    status.update(f"{name}: {describe(service)}")
            if service is not None and finish is not None:
                finish(service)
        finally:
            if service is not None:
                service.close()
    summary = describe(service) if service is not None else "not started"
    again = f" (rebuilt after {restarts.count} broker outage(s))" if restarts.count else ""
    err.print(f"{name} stopped: {summary}{again}")


def _run_stage(name: str, waiting: str, build, progress, system) -> None:
    _serve(name, waiting, system, build=build, step=lambda service: service.step(), describe=progress)


@app.command()
def selector(
    config: Path = SystemFile,
    metadata_url: str = MetadataUrl,
    database: str = Database,
    artifacts: Path = Artifacts,
    instance: str = typer.Option("0", help="Instance id, unique per running selector (its transactional id)."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Build each trigger's training set: ClickHouse `training_sets`, an Arrow manifest, a TrainingSetEvent."""
    from modyn_stream.artifacts import ArtifactStore
    from modyn_stream.selection.service import SelectorService

    system = _system(config, bootstrap, namespace, metadata_url, database, artifacts)
    store = _store(system)
    _run_stage(
        "selector",
        "waiting for triggers",
        lambda settings: SelectorService(settings, store, ArtifactStore(system.artifacts.root), instance=instance),
        lambda service: f"{service.selected:,} training sets, {service.dead_letters:,} dead letters",
        system,
    )


@app.command()
def trainer(
    config: Path = SystemFile,
    metadata_url: str = MetadataUrl,
    database: str = Database,
    artifacts: Path = Artifacts,
    cache_mib: int = typer.Option(512, min=0, help="Payload cache size in MiB (data reused by later triggers)."),
    instance: str = typer.Option("0", help="Instance id, unique per running trainer (its transactional id)."),
    trust_code: bool = TrustCode,
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Train a model version per TrainingSetEvent: payloads fetched from Kafka by offset, PyTorch, the model store."""
    from modyn_stream.artifacts import ArtifactStore
    from modyn_stream.training.loop import preload_optimizers
    from modyn_stream.training.service import TrainerService

    threading.Thread(target=preload_optimizers, name="preload", daemon=True).start()

    def progress(service: TrainerService) -> str:
        last = service.last_event
        latest = f" (last {last['model_id']}, loss {last['final_loss'] or 0.0:.4f})" if last else ""
        return f"{service.trained:,} models{latest}, {service.dead_letters:,} dead letters"

    system = _system(config, bootstrap, namespace, metadata_url, database, artifacts)
    store = _store(system)
    _run_stage(
        "trainer",
        "waiting for training sets",
        lambda settings: TrainerService(
            settings,
            store,
            ArtifactStore(system.artifacts.root),
            instance=instance,
            cache_bytes=cache_mib << 20,
            trust=system.code_trust(trust_code),
        ),
        progress,
        system,
    )


@app.command()
def evaluator(
    config: Path = SystemFile,
    metadata_url: str = MetadataUrl,
    database: str = Database,
    cache_mib: int = typer.Option(512, min=0, help="MiB each for payloads and decoded inputs reused by later models."),
    instance: str = typer.Option("0", help="Instance id, unique per running evaluator (its transactional id)."),
    after_pipeline: str = typer.Option(
        None, metavar="PIPELINE_ID", help="Instead: run this pipeline's after_pipeline handlers once, then exit."
    ),
    trust_code: bool = TrustCode,
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Score each model version on its evaluation windows: ClickHouse `evaluations` and EvaluationEvents."""
    from modyn_stream.evaluation.service import EvaluatorService

    system = _system(config, bootstrap, namespace, metadata_url, database)
    store = _store(system)
    trust = system.code_trust(trust_code)
    if after_pipeline:
        _evaluate_after_pipeline(system, store, after_pipeline, trust)
        return
    _run_stage(
        "evaluator",
        "waiting for model versions",
        lambda settings: EvaluatorService(settings, store, instance=instance, cache_bytes=cache_mib << 20, trust=trust),
        lambda service: (
            f"{service.done:,} models evaluated, {service.rows_written:,} metric values, "
            f"{service.dead_letters:,} dead letters"
        ),
        system,
    )


def evaluate(
    pipeline: Path = typer.Argument(..., help="The pipeline YAML file."),
    handler: str = typer.Option(
        ..., "--handler", help="The name of an evaluation handler with execution_time: manual."
    ),
    runs: Path = typer.Option(Path(".modyn-stream/runs"), "--runs", help="Where `modyn-stream run` keeps its runs."),
    config: Path = SystemFile,
    metadata_url: str = MetadataUrl,
    database: str = Database,
    trust_code: bool = TrustCode,
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Run a manual evaluation handler over every stored model of a pipeline (ClickHouse `evaluations`): those of
    its `modyn-stream run` when there is one in --runs, else those of the deployment in the system config."""
    import json

    from modyn_stream.evaluation.service import EvaluatorService
    from modyn_stream.kafka.connect import connected
    from modyn_stream.orchestration.run import run_directory
    from modyn_stream.pipeline.loading import load_pipeline, pipeline_id

    system = _system(config, bootstrap, namespace, metadata_url, database)
    trust = system.code_trust(trust_code)
    loaded = load_pipeline(pipeline, trust)
    pid = pipeline_id(loaded)[0]
    state = run_directory(loaded, runs) / "run.json"
    if metadata_url is None and state.is_file():  # the run's own store and namespace; its Kafka as `run` finds it
        run_namespace = json.loads(state.read_text())["namespace"]
        system = _system(config, bootstrap, run_namespace, f"chdb://{(state.parent / 'metadata').resolve()}", "modyn")
        kafka = connected(system.kafka, say=err.print)
    else:
        kafka = _connected(system)
    store = _store(system)
    store.migrate()
    with (
        kafka as settings,
        EvaluatorService(settings, store, trust=trust) as service,
        err.status(f"evaluate: handler {handler!r} of {pid} ..."),
    ):
        written = service.evaluate_manually(loaded, pid, handler)
    out.print(
        f"evaluate: {pid}: handler {handler!r}: {written:,} metric values in {store.display_url}", highlight=False
    )


def _evaluate_after_pipeline(system, store, pid: str, trust) -> None:
    from modyn_stream.evaluation.service import EvaluatorService
    from modyn_stream.exceptions import ModynStreamError
    from modyn_stream.pipeline.registry import registered_pipeline

    store.migrate()
    config = registered_pipeline(store, pid)
    if config is None:
        raise ModynStreamError(f"pipeline {pid} is not registered in ClickHouse database {store.database}")
    with (
        _connected(system) as settings,
        EvaluatorService(settings, store, trust=trust) as service,
        err.status(f"evaluator: after_pipeline handlers of {pid} ..."),
    ):
        published = service.evaluate_pipeline(config, pid)
    err.print(f"evaluator: {pid}: {published:,} after_pipeline metric values published" if published else
              f"evaluator: {pid}: after_pipeline results were already published")  # fmt: skip
