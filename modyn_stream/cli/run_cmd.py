"""`modyn-stream run` (the main job) and `modyn-stream report`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from modyn_stream.cli._console import err, out
from modyn_stream.cli._options import Bootstrap, Namespace, TrustCode, kafka_settings

Runs = typer.Option(Path(".modyn-stream/runs"), "--runs", help="Where runs keep their state and reports.")


def run(
    pipeline: Path = typer.Argument(..., help="The pipeline YAML file."),
    fresh: bool = typer.Option(
        False, "--fresh", help="Start over instead of resuming: the last run's directory and topics are deleted."
    ),
    no_replay: bool = typer.Option(False, "--no-replay", help="Do not replay: wait for live data on the topic."),
    runs: Path = Runs,
    trust_code: bool = TrustCode,
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Run a pipeline end to end: replay, ingest, trigger, select, train, evaluate, report."""
    from rich.live import Live
    from rich.table import Table

    from modyn_stream.kafka.connect import connected
    from modyn_stream.kafka.consumer import ShutdownFlag
    from modyn_stream.orchestration.run import RunProgress, run_pipeline
    from modyn_stream.pipeline import checks
    from modyn_stream.pipeline.loading import PipelineConfigError, load_pipeline
    from modyn_stream.pipeline.notes import pipeline_notes
    from modyn_stream.pipeline.system import load_system_config
    from modyn_stream.report import write_report

    trust = load_system_config().code_trust(trust_code)
    config = load_pipeline(pipeline, trust)  # every problem at once, before anything starts
    if missing := checks.device_problems(config) + checks.weights_problems(config):
        raise PipelineConfigError(str(pipeline), missing)  # this process trains and evaluates
    for note in pipeline_notes(config, portability=False):
        out.print(f"{pipeline}: note: {note}", highlight=False, markup=False)
    shutdown = ShutdownFlag()

    def table(progress: RunProgress) -> Table:
        view = Table(title=f"{config.pipeline.name}: {progress.phase}", show_header=False)
        loss = f" (last loss {progress.last_loss:.4f})" if progress.last_loss is not None else ""
        view.add_row("samples replayed", f"{progress.replayed:,}")
        view.add_row("samples ingested", f"{progress.ingested:,}")
        view.add_row("triggers fired", str(progress.triggers))
        view.add_row("models trained", f"{progress.models}{loss}")
        view.add_row("models evaluated", str(progress.evaluated))
        view.add_row("dead letters", str(progress.dead_letters))
        return view

    # Redrawn from the run's own updates, at most 4 times a second: no refresh thread, so the process has
    # no thread of its own when the run forks its replay process (and none competes for the GIL).
    redrawn = [0.0]

    def update(progress: RunProgress) -> None:
        if time.monotonic() - redrawn[0] >= 0.25 or progress.phase == "done":
            live.update(table(progress), refresh=True)
            redrawn[0] = time.monotonic()

    with (
        connected(kafka_settings(bootstrap, namespace), say=err.print) as settings,
        shutdown.on_signals(),
        Live(table(RunProgress()), console=err, auto_refresh=False) as live,
    ):
        try:
            result = run_pipeline(
                config, settings, runs, config_dir=pipeline.parent, fresh=fresh, replay_data=not no_replay,
                update=update, stop=lambda: shutdown.is_set, trust=trust,
            )  # fmt: skip
        except BaseException:
            live.transient = True  # the error alone, on a line of its own
            raise
        live.stop()
        if not err.is_terminal:
            err.line()  # a log or a pipe: rich leaves its last frame without a line end
    for note in result.progress.notes:
        err.print(note)
    page = write_report(result.store, result.pipeline_id, result.run_dir / "report", config.pipeline.name)
    out.print(f"{config.pipeline.name}: {result.progress.triggers} triggers, {result.progress.models} models, "
              f"{result.progress.evaluated} evaluated in {result.seconds:.0f} s; report: {page}")  # fmt: skip


def report(
    pipelines: list[Path] = typer.Argument(..., help="Pipeline YAML files or run directories."),
    compare: bool = typer.Option(False, "--compare", help="Overlay the runs and print a summary table."),
    runs: Path = Runs,
) -> None:
    """Write a run's report (CSV, PNG, HTML) from its ClickHouse; with --compare, overlay several runs."""
    from rich.table import Table

    from modyn_stream.orchestration.run import run_directory, run_store
    from modyn_stream.pipeline.loading import load_pipeline, pipeline_id
    from modyn_stream.report import compare as compare_runs
    from modyn_stream.report import write_report

    run_dirs = {}
    for item in pipelines:
        config = load_pipeline(item) if item.is_file() else None
        run_dir = run_directory(config, runs) if config else item
        if not (run_dir / "run.json").exists():
            raise typer.BadParameter(f"{run_dir}: no run there (run the pipeline first)")
        name = run_dir.name if run_dir.name not in run_dirs else str(run_dir)  # the same pipeline, two runs
        run_dirs[name] = (run_dir, config)
    if not compare:
        if len(run_dirs) != 1:
            raise typer.BadParameter("give one pipeline, or --compare with several")
        (run_dir, config), = run_dirs.values()  # fmt: skip
        store = run_store(run_dir)
        pid = pipeline_id(config)[0] if config else store.query("SELECT any(pipeline_id) FROM pipelines")[0][0]
        out.print(f"report: {write_report(store, pid, run_dir / 'report', run_dir.name)}")
        return
    summaries, plot = compare_runs({name: d / "report" for name, (d, _) in run_dirs.items()}, runs / "compare")
    view = Table(title="comparison")
    for column in ("run", "triggers", "training time s", f"mean active {summaries[0].metric or ''}"):
        view.add_column(column)
    for s in summaries:
        view.add_row(
            s.name, str(s.triggers), f"{s.training_s:.1f}", "-" if s.mean_active is None else f"{s.mean_active:.4f}"
        )
    out.print(view)
    out.print(f"overlay: {plot}")
