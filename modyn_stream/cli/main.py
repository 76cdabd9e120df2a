"""Entry point of the `modyn-stream` command: sub-commands, and one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer

from modyn_stream import __version__
from modyn_stream.cli import inspect_cmd, kafka_cmd, replay_cmd, service_cmd
from modyn_stream.cli._console import err, out
from modyn_stream.exceptions import ModynStreamError
from modyn_stream.kafka.config import LIBRDKAFKA_LOGGER

app = typer.Typer(
    name="modyn-stream",
    help="Train ML models on growing datasets: Kafka streams in, ClickHouse selects, PyTorch trains.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(kafka_cmd.app, name="kafka")
app.add_typer(service_cmd.app, name="service")
app.add_typer(replay_cmd.datasets_app, name="datasets")
app.command()(replay_cmd.replay)
app.command()(inspect_cmd.tail)
app.command()(inspect_cmd.topics)


def _version(value: bool) -> None:
    if value:
        out.print(f"modyn-stream {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # librdkafka's own retries (e.g. "coordinator load in progress") are noise unless asked for.
    logging.getLogger(LIBRDKAFKA_LOGGER).setLevel(logging.DEBUG if verbose else logging.ERROR)


@app.command()
def demo(
    count: int = typer.Option(10_000, min=1, help="Number of SampleEvents to send."),
    partitions: int = typer.Option(3, min=1, help="Partitions of the demo sample topic."),
    bootstrap: str = typer.Option(None, envvar="MODYN_KAFKA_BOOTSTRAP", help="Kafka to use; default: local."),
) -> None:
    """Round-trip SampleEvents through Kafka (starts the local Kafka if none is configured)."""
    from modyn_stream.kafka.config import KafkaSettings
    from modyn_stream.kafka.connect import connected
    from modyn_stream.roundtrip import run_roundtrip

    settings = KafkaSettings.from_env(bootstrap_servers=bootstrap)
    with connected(settings, say=err.print) as settings, err.status("") as status:

        def progress(stage: str, n: int) -> None:
            status.update(f"{stage} {n:,} / {count:,} events")

        result = run_roundtrip(settings, count=count, partitions=partitions, progress=progress)
    out.print(
        f"{result.topic} on {settings.bootstrap_servers}: produced {result.produced:,} "
        f"({result.produced / result.produce_s:,.0f}/s), read back and decoded {result.consumed:,} "
        f"({result.consumed / max(result.consume_s, 1e-9):,.0f}/s), {result.end_of_stream_markers} end-of-stream "
        f"markers, {result.mismatches} payload mismatches"
    )
    if not result.ok:
        raise ModynStreamError(f"round trip lost or changed events: {result}")
    out.print("[green]round trip OK[/]")


@app.command()
def decode(
    file: Path = typer.Argument(..., help="File holding the bytes of one event ('-' for standard input)."),
) -> None:
    """Decode one Avro event (either framing) and print it as JSON."""
    from modyn_stream.events import EventCodec, EventDecodeError

    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise ModynStreamError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        event = EventCodec().decode(data)
    except EventDecodeError as exc:
        raise ModynStreamError(f"{file}: not a valid event: {exc}") from None
    record = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in event.record.items()}
    out.print_json(json.dumps({"type": event.name, **record}))


@app.command()
def schemas() -> None:
    """List the event schemas with their fingerprints."""
    from modyn_stream.events import default_schemas

    s = default_schemas()
    for name in s.names():
        schema = s.get(name)
        out.print(f"{schema.full_name:45} CRC-64-AVRO {schema.fingerprint.hex()}")


def main() -> None:
    try:
        app()
    except ModynStreamError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
