"""`modyn-stream service NAME`: one service as its own process."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from modyn_stream.cli._console import err
from modyn_stream.cli._options import Bootstrap, Namespace, kafka_settings

app = typer.Typer(help="Run one service as its own process (stops cleanly on Ctrl-C / SIGTERM).")

MetadataUrl = typer.Option(
    None, "--metadata-url", envvar="MODYN_CLICKHOUSE_URL", help="chdb:///path or http(s)://host:8123"
)
Database = typer.Option("modyn", help="ClickHouse database.")


def _metadata_store(metadata_url: str | None, database: str):
    """The store a service command uses: --metadata-url, else the embedded ClickHouse."""
    from modyn_stream.metadata import MetadataStore
    from modyn_stream.metadata.store import embedded_url

    return MetadataStore(metadata_url or embedded_url(), database)


@app.command()
def ingest(
    metadata_url: str = MetadataUrl,
    database: str = Database,
    max_batch: int = typer.Option(20_000, min=1, help="Most samples per ClickHouse insert."),
    max_wait: float = typer.Option(0.5, min=0.01, help="Longest a sample waits for its insert, in seconds."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Ingest sample metadata from {ns}.samples.* into ClickHouse, exactly once."""
    from modyn_stream.ingest.service import IngestService
    from modyn_stream.kafka.connect import connected
    from modyn_stream.kafka.consumer import ShutdownFlag

    store = _metadata_store(metadata_url, database)
    shutdown = ShutdownFlag()
    with (
        connected(kafka_settings(bootstrap, namespace), start_local=False) as settings,
        shutdown.on_signals(),
        IngestService(settings, store, max_batch=max_batch, max_wait_s=max_wait) as service,
        err.status("ingest: waiting for samples ...") as status,
    ):
        started, last_report = time.monotonic(), 0.0
        while not shutdown.is_set:
            service.step()
            if time.monotonic() - last_report > 1:
                last_report = time.monotonic()
                stats = service.stats
                rate = stats.samples / max(last_report - started, 1e-9)
                status.update(
                    f"ingest: {stats.samples:,} samples ({rate:,.0f}/s), "
                    f"{stats.dead_letters:,} dead letters, {stats.batches:,} inserts"
                )
        service.flush()
    err.print(f"ingest stopped: {service.stats.samples:,} samples, {service.stats.dead_letters:,} dead letters")


@app.command()
def trigger(
    metadata_url: str = MetadataUrl,
    database: str = Database,
    interval: float = typer.Option(1.0, min=0.05, help="Seconds between evaluations."),
    idle_timeout: float = typer.Option(
        None, min=0.1, help="Seconds after which an idle partition stops holding the watermark back (off by default)."
    ),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Evaluate every registered pipeline's trigger and emit TriggerEvents, exactly once."""
    from modyn_stream.kafka.connect import connected
    from modyn_stream.kafka.consumer import ShutdownFlag
    from modyn_stream.triggers.service import TriggerService

    store = _metadata_store(metadata_url, database)
    shutdown = ShutdownFlag()
    idle_ms = None if idle_timeout is None else int(idle_timeout * 1000)
    with (
        connected(kafka_settings(bootstrap, namespace), start_local=False) as settings,
        shutdown.on_signals(),
        TriggerService(settings, store, idle_timeout_ms=idle_ms) as service,
        err.status("trigger: waiting for data ...") as status,
    ):
        while not shutdown.is_set:
            started = time.monotonic()
            if service.step():
                status.update(f"trigger: {service.fired:,} triggers fired")
            time.sleep(max(0.0, interval - (time.monotonic() - started)))  # evaluation cadence
    err.print(f"trigger stopped: {service.fired:,} triggers fired")


Artifacts = typer.Option(
    Path(".modyn-stream/artifacts"), envvar="MODYN_ARTIFACTS_ROOT", help="Artifact store root (manifests, models)."
)


def _run_stage(name: str, waiting: str, build, progress, bootstrap: str, namespace: str) -> None:
    """Run a TransactionalStage service until Ctrl-C / SIGTERM, showing `progress(service)` as it commits."""
    from modyn_stream.kafka.connect import connected
    from modyn_stream.kafka.consumer import ShutdownFlag

    shutdown = ShutdownFlag()
    with (
        connected(kafka_settings(bootstrap, namespace), start_local=False) as settings,
        shutdown.on_signals(),
        build(settings) as service,
        err.status(f"{name}: {waiting} ...") as status,
    ):
        while not shutdown.is_set:
            if service.step():
                status.update(f"{name}: {progress(service)}")
    err.print(f"{name} stopped: {progress(service)}")


@app.command()
def selector(
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

    store = _metadata_store(metadata_url, database)
    _run_stage(
        "selector",
        "waiting for triggers",
        lambda settings: SelectorService(settings, store, ArtifactStore(artifacts), instance=instance),
        lambda service: f"{service.selected:,} training sets, {service.dead_letters:,} dead letters",
        bootstrap,
        namespace,
    )


@app.command()
def trainer(
    metadata_url: str = MetadataUrl,
    database: str = Database,
    artifacts: Path = Artifacts,
    cache_mib: int = typer.Option(512, min=0, help="Payload cache size in MiB (data reused by later triggers)."),
    instance: str = typer.Option("0", help="Instance id, unique per running trainer (its transactional id)."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Train a model version per TrainingSetEvent: payloads fetched from Kafka by offset, PyTorch, the model store."""
    from modyn_stream.artifacts import ArtifactStore
    from modyn_stream.training.service import TrainerService

    def progress(service: TrainerService) -> str:
        last = service.last_event
        latest = f" (last {last['model_id']}, loss {last['final_loss'] or 0.0:.4f})" if last else ""
        return f"{service.trained:,} models{latest}, {service.dead_letters:,} dead letters"

    store = _metadata_store(metadata_url, database)
    _run_stage(
        "trainer",
        "waiting for training sets",
        lambda settings: TrainerService(
            settings, store, ArtifactStore(artifacts), instance=instance, cache_bytes=cache_mib << 20
        ),
        progress,
        bootstrap,
        namespace,
    )


@app.command()
def evaluator(
    metadata_url: str = MetadataUrl,
    database: str = Database,
    cache_mib: int = typer.Option(512, min=0, help="Payload cache size in MiB (evaluation data reused by models)."),
    instance: str = typer.Option("0", help="Instance id, unique per running evaluator (its transactional id)."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Score each model version on its evaluation windows: ClickHouse `evaluations` and EvaluationEvents."""
    from modyn_stream.evaluation.service import EvaluatorService

    store = _metadata_store(metadata_url, database)
    _run_stage(
        "evaluator",
        "waiting for model versions",
        lambda settings: EvaluatorService(settings, store, instance=instance, cache_bytes=cache_mib << 20),
        lambda service: (
            f"{service.done:,} models evaluated, {service.rows_written:,} metric values, "
            f"{service.dead_letters:,} dead letters"
        ),
        bootstrap,
        namespace,
    )
