"""`modyn-stream validate`: check a pipeline file, and optionally register it."""

from __future__ import annotations

from pathlib import Path

import typer

from modyn_stream.cli._console import err, out
from modyn_stream.cli._options import TrustCode


def validate(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML."),
    register: bool = typer.Option(False, "--register", help="Also register it (ClickHouse + {ns}.pipelines)."),
    config: Path = typer.Option(None, "--config", help="System config YAML (Kafka, metadata, artifacts)."),
    trust_code: bool = TrustCode,
) -> None:
    """Report every problem of a pipeline file at once, each with its YAML path."""
    from modyn_stream.pipeline.loading import PipelineConfigError, load_pipeline, pipeline_id
    from modyn_stream.pipeline.notes import pipeline_notes
    from modyn_stream.pipeline.system import load_system_config

    system = load_system_config(config)
    try:
        loaded = load_pipeline(pipeline, system.code_trust(trust_code))
    except PipelineConfigError as exc:
        for problem in exc.problems:
            err.print(f"{exc.source}: {problem}", highlight=False, markup=False)
        err.print(f"{exc.source}: {len(exc.problems)} problem(s)", highlight=False)
        raise typer.Exit(1) from None
    pid = pipeline_id(loaded)[0]
    out.print(f"{pipeline}: OK — pipeline {loaded.pipeline.name!r}, id {pid}", highlight=False)
    for note in pipeline_notes(loaded):
        out.print(f"{pipeline}: note: {note}", highlight=False, markup=False)
    if register:
        from modyn_stream.kafka.connect import connected
        from modyn_stream.metadata import MetadataStore
        from modyn_stream.pipeline.registry import register_pipeline

        store = MetadataStore(system.metadata_url, system.metadata.database)
        with connected(system.kafka, state_dir=system.state_dir / "kafka", start_local=False) as settings:
            register_pipeline(loaded, settings, store)
        out.print(f"registered {pid} in {store.display_url} and on {settings.namespace}.pipelines", highlight=False)
