"""`modyn-stream replay` and `modyn-stream datasets generate`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from modyn_stream.cli._console import err, out
from modyn_stream.cli._options import Bootstrap, Namespace, kafka_settings
from modyn_stream.exceptions import ModynStreamError


class InputFormat(StrEnum):
    npz = "npz"
    idx = "idx"
    csv = "csv"
    binary = "binary"
    images = "images"


class Timestamps(StrEnum):
    field = "field"
    mtime = "mtime"
    increasing = "increasing"
    random = "random"


def _time(value: str | None, option: str) -> int | None:
    from modyn_stream.timeutil import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


def replay(
    inputs: list[Path] = typer.Argument(..., help="Input file(s), or the folder for --format images."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset id: publishes to {ns}.samples.{dataset}."),
    fmt: InputFormat = typer.Option(InputFormat.npz, "--format", "-f", help="Input format."),
    x_key: str = typer.Option("x", help="npz: array of samples."),
    y_key: str = typer.Option("y", help="npz: array of labels ('' for none)."),
    t_key: str = typer.Option(None, help="npz: array of event times (ms)."),
    labels: Path = typer.Option(None, help="idx: the labels file."),
    label_column: str = typer.Option(None, help="csv: label column (name, or index without header)."),
    timestamp_column: str = typer.Option(None, help="csv: event-time column (ms)."),
    separator: str = typer.Option(",", help="csv: field separator."),
    header: bool = typer.Option(True, "--header/--no-header", help="csv: first line names the columns."),
    record_size: int = typer.Option(None, help="binary: bytes per record."),
    label_size: int = typer.Option(None, help="binary: leading label bytes of each record."),
    byteorder: str = typer.Option("little", help="binary: label byte order (little|big)."),
    label_suffix: str = typer.Option(".label", help="images: suffix of each image's label file."),
    timestamps: Timestamps = typer.Option(
        Timestamps.increasing, help="Event times: field (from the data), mtime (file), increasing, random."
    ),
    start: str = typer.Option("2024-01-01", help="increasing/random: first event time (ISO 8601 or epoch seconds)."),
    step: str = typer.Option("1s", help="increasing: time between samples; random: mean spacing."),
    seed: int = typer.Option(0, help="random: seed."),
    start_replay_at: str = typer.Option(None, help="Publish only samples with event time >= this (ISO or epoch s)."),
    stop_replay_at: str = typer.Option(None, help="Publish only samples with event time < this (ISO or epoch s)."),
    partitions: int = typer.Option(4, min=1, help="Partitions of the sample topic (if it is created)."),
    rate: float = typer.Option(None, min=1, help="Publish at most this many samples per second."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Publish a dataset as timestamped SampleEvents, then an end-of-stream marker per partition."""
    from modyn_stream.kafka.connect import connected
    from modyn_stream.replay import sources
    from modyn_stream.replay.publisher import TimestampPolicy
    from modyn_stream.replay.publisher import replay as publish
    from modyn_stream.timeutil import parse_duration

    if fmt is InputFormat.binary and (record_size is None or label_size is None):
        raise typer.BadParameter("--format binary needs --record-size and --label-size")
    try:
        step_ms = parse_duration(step)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--step") from None
    policy = TimestampPolicy(timestamps.value, _time(start, "--start"), step_ms, seed)
    with err.status(f"Reading and checking {', '.join(str(p) for p in inputs)} ..."):
        if fmt is InputFormat.npz:
            source = sources.read_npz(inputs[0], x_key, y_key or None, t_key)
        elif fmt is InputFormat.idx:
            source = sources.read_idx(inputs[0], labels)
        elif fmt is InputFormat.csv:
            source = sources.read_csv(inputs[0], label_column, separator, header, timestamp_column)
        elif fmt is InputFormat.binary:
            source = sources.read_binary(inputs, record_size, label_size, byteorder)
        else:
            source = sources.read_image_folder(inputs[0], label_suffix)
        policy.assign(source)  # fail before publishing if the timestamps can't be had
    err.print(f"{len(source):,} samples checked.")
    settings = kafka_settings(bootstrap, namespace)
    columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with connected(settings, start_local=False) as settings, Progress(*columns, console=err) as progress:
        task = progress.add_task("replay", total=len(source))
        result = publish(
            settings,
            dataset,
            source,
            policy,
            partitions=partitions,
            start_at_ms=_time(start_replay_at, "--start-replay-at"),
            stop_at_ms=_time(stop_replay_at, "--stop-replay-at"),
            rate=rate,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    for note in result.notes:
        err.print(f"note: {note}")
    rate_now = result.published / max(result.seconds, 1e-9)
    out.print(
        f"published {result.published:,} samples to {result.topic} ({rate_now:,.0f}/s)"
        + (f", skipped {result.skipped:,} outside the replay window" if result.skipped else "")
        + f"; end-of-stream markers on {len(result.per_partition)} partitions"
    )


datasets_app = typer.Typer(help="Built-in drifting datasets (generated); Modyn's benchmark files prepared for replay.")


@datasets_app.command("generate")
def generate_cmd(
    name: str = typer.Argument(..., help="digits-drift, tabular-drift, yearbook-drift or criteo-drift."),
    output: Path = typer.Argument(..., help="Where to write the .npz (arrays x, y, t)."),
    samples: int = typer.Option(20_000, min=1, help="Number of samples."),
    seed: int = typer.Option(0, help="Seed: the same seed gives the same dataset."),
    days: float = typer.Option(60, min=0.001, help="Event-time span of the stream, in days."),
) -> None:
    """Write a built-in dataset as .npz; replay it with --format npz --timestamps field --t-key t."""
    from modyn_stream.datasets import generate

    try:
        dataset = generate(name, samples=samples, seed=seed, days=days)
    except ValueError as exc:
        raise ModynStreamError(str(exc)) from None
    path = dataset.save(output)
    out.print(f"wrote {len(dataset.y):,} samples of {name} to {path}")


@datasets_app.command("prepare")
def prepare_cmd(
    name: str = typer.Argument(..., help="yearbook, fmow, arxiv, huffpost, mnist, cglm, cloc or criteo."),
    source: Path = typer.Argument(..., help="The downloaded file or folder (see `--help` of each name in docs)."),
    output: Path = typer.Argument(..., help="Folder to write into."),
    split: str = typer.Option("train", help="Wild-Time: train, test or all (Yearbook); cloc: train or all."),
    daily: bool = typer.Option(False, help="fmow: date each image by its capture time, not its year."),
    labels: Path = typer.Option(None, help="mnist: the labels IDX file (default: beside the images)."),
    metadata: Path = typer.Option(None, help="cglm: the metadata CSV (default: in SOURCE)."),
    label_type: str = typer.Option("landmark", help="cglm: landmark, supercategory or hierarchical."),
    min_samples_per_class: int = typer.Option(25, min=1, help="cglm: drop classes with fewer samples."),
    frequency_threshold: int = typer.Option(3, min=1, help="criteo: rarer categorical values share one index."),
) -> None:
    """Turn a Modyn benchmark dataset's downloaded files into what `replay` reads, with Modyn's event times."""
    from modyn_stream.datasets.prepare import PREPARERS

    if name not in PREPARERS:
        raise typer.BadParameter(f"unknown dataset {name!r}; known: {', '.join(PREPARERS)}", param_hint="NAME")
    if not source.exists():
        raise ModynStreamError(f"{source}: does not exist")
    with err.status(f"Preparing {name} from {source} ..."):
        prepared = PREPARERS[name](
            source, output, split=split, daily=daily, labels=labels, metadata=metadata, label_type=label_type,
            min_samples_per_class=min_samples_per_class, frequency_threshold=frequency_threshold,
        )  # fmt: skip
    for note in prepared.notes:
        err.print(f"note: {note}")
    out.print(f"wrote {prepared.samples:,} samples of {name} to {', '.join(str(p) for p in prepared.outputs)}")
    out.print(f"publish them with: {prepared.replay_command(name)}")
