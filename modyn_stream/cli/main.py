"""Entry point of the `modyn-stream` command: sub-commands, and one-line errors instead of tracebacks."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
from rich.markup import escape

from modyn_stream import __version__
from modyn_stream.cli import inspect_cmd, kafka_cmd, pipeline_cmd, replay_cmd, run_cmd, service_cmd
from modyn_stream.cli._console import err, out
from modyn_stream.cli._options import Bootstrap, Namespace, kafka_settings
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
app.command()(pipeline_cmd.validate)
app.command("import-modyn")(pipeline_cmd.import_modyn)
app.command()(run_cmd.run)
app.command()(run_cmd.report)
app.command()(service_cmd.evaluate)


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
    librdkafka = logging.getLogger(LIBRDKAFKA_LOGGER)
    librdkafka.setLevel(logging.DEBUG if verbose else logging.ERROR)
    if not verbose:
        librdkafka.addFilter(_quiet_reconnects)
        # The HTTP client's retries of an unreachable ClickHouse: our own error says it once, with the URL.
        for noisy in ("urllib3.connectionpool", "clickhouse_connect"):  # (clickhouse_connect resets "urllib3")
            logging.getLogger(noisy).setLevel(logging.ERROR)


def _quiet_reconnects(record: logging.LogRecord) -> bool:
    """While a broker is away every client logs each reconnect attempt; the services say it once themselves."""
    message = record.getMessage()
    return not any(sign in message for sign in ("Connection refused", "brokers are down", "Disconnected"))


@app.command()
def demo(
    samples: int = typer.Option(20_000, min=1, help="Samples of the drifting digits stream to replay."),
    partitions: int = typer.Option(4, min=1, help="Partitions of the sample topic."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Replay a drifting stream into Kafka and ingest it into ClickHouse (starts the local Kafka if needed)."""
    from rich.table import Table

    from modyn_stream.demo import run_demo
    from modyn_stream.ingest.watermark import END_OF_TIME
    from modyn_stream.kafka.connect import connected
    from modyn_stream.metadata import MetadataStore
    from modyn_stream.timeutil import format_time

    store = MetadataStore.from_env()
    with connected(kafka_settings(bootstrap, namespace), say=err.print) as settings, err.status("") as status:
        result = run_demo(settings, store, samples=samples, partitions=partitions, say=status.update)
    replayed = result.replayed
    out.print(
        f"replayed {replayed.published:,} samples to {replayed.topic} "
        f"({replayed.published / max(replayed.seconds, 1e-9):,.0f}/s); ingested into ClickHouse at {store.display_url} "
        f"(database {store.database}) in {result.seconds:.1f} s"
    )
    table = Table(title="ingest progress per partition")
    for column in ("partition", "next offset", "samples", "latest event time", "ended"):
        table.add_column(column)
    for state in result.partitions:
        latest = format_time(state.max_event_time) if state.max_event_time is not None else "-"
        table.add_row(str(state.partition), str(state.next_offset), f"{state.samples_ingested:,}", latest,
                      "yes" if state.end_of_stream else "no")  # fmt: skip
    out.print(table)
    out.print("global watermark: " + ("end of stream" if result.watermark == END_OF_TIME else str(result.watermark)))
    windows = Table(title="samples per 15-day window (ClickHouse): the class mix drifts")
    for column in ("window", "samples", "most frequent labels"):
        windows.add_column(column)
    for start, count, top in result.windows:
        windows.add_row(start.strftime("%Y-%m-%d"), f"{count:,}", ", ".join(str(label) for label in top))
    out.print(windows)


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
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
