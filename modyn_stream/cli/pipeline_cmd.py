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


def import_modyn(
    old: Path = typer.Argument(..., help="A pipeline YAML in Modyn's pre-2024 layout."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write it in the current layout."),
) -> None:
    """Convert Modyn's old pipeline layout to the current one, printing each change, then validate it."""
    import yaml

    from modyn_stream.pipeline.loading import PipelineConfigError, load_pipeline, parse_yaml
    from modyn_stream.pipeline.modyn_import import ModynLayoutError, convert

    try:
        data = parse_yaml(old.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        err.print(f"{old}: cannot read it: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    if not isinstance(data, dict):
        err.print(f"{old}: a pipeline must be a mapping of sections", highlight=False)
        raise typer.Exit(1)
    try:
        new, changes = convert(data)
    except ModynLayoutError as exc:
        err.print(f"{old}: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    output.write_text(yaml.dump(new, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True), encoding="utf-8")
    for change in changes or ["nothing to convert: it is in the current layout"]:
        out.print(f"{old}: {change}", highlight=False, markup=False)
    try:
        load_pipeline(output)
    except PipelineConfigError as exc:
        for problem in exc.problems:
            err.print(f"{output}: {problem}", highlight=False, markup=False)
        err.print(f"{output}: written, with {len(exc.problems)} problem(s) left", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"{output}: written, and valid", highlight=False)


class _BlockDumper(__import__("yaml").SafeDumper):
    """Multi-line strings (Modyn's code fields) as YAML block literals, as people write them."""


def _string(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _string)
