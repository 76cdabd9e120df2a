"""`modyn-stream kafka provision|up|down|status`: the local Kafka broker."""

from pathlib import Path

import typer

from modyn_stream.cli._console import err, out
from modyn_stream.cli._options import Bootstrap, Namespace, kafka_settings
from modyn_stream.kafka.local import DEFAULT_STATE_DIR, LocalKafka, jars_dir, kafka_version, provision

app = typer.Typer(help="Run a real Apache Kafka broker locally (KRaft, from Maven Central; no Docker).")

StateDir = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="Where the broker keeps data, logs and its pid.")


@app.command("provision")
def provision_cmd() -> None:
    """Resolve Kafka's jars with Maven (once; later calls are instant)."""
    with err.status(f"Resolving Apache Kafka {kafka_version()} with Maven ..."):
        path = provision()
    out.print(f"Kafka {kafka_version()} jars in {path}")


@app.command()
def up(
    state_dir: Path = StateDir, timeout: float = typer.Option(90.0, help="Seconds to wait for it to serve.")
) -> None:
    """Start the broker (or find it running) and print its bootstrap address."""
    kafka = LocalKafka(state_dir)
    if not kafka.status().running and not (jars_dir() / ".complete").exists():
        with err.status(f"Resolving Apache Kafka {kafka_version()} with Maven (first run only) ..."):
            provision()
    with err.status("Starting Kafka ..."):
        bootstrap = kafka.start(timeout_s=timeout)
    err.print(f"Kafka {kafka_version()} is up (state in {kafka.state_dir}); bootstrap address:")
    out.print(bootstrap)


@app.command()
def down(state_dir: Path = StateDir) -> None:
    """Stop the broker cleanly (its data stays for the next `up`)."""
    stopped = LocalKafka(state_dir).stop()
    err.print("Kafka stopped." if stopped else "Kafka was not running.")


@app.command()
def status(
    state_dir: Path = StateDir,
    bootstrap: bool = typer.Option(False, "--bootstrap", help="Print only the bootstrap address (for scripts)."),
) -> None:
    """Say whether the broker runs, and where. Exits 1 when it does not."""
    state = LocalKafka(state_dir).status()
    if bootstrap:
        if state.running:
            out.print(state.bootstrap)
        raise typer.Exit(0 if state.running else 1)
    if state.running:
        out.print(f"running: bootstrap {state.bootstrap}, pid {state.pid}, state {state.state_dir}")
    else:
        out.print(f"not running (state {state.state_dir})")
        raise typer.Exit(1)


@app.command()
def check(
    count: int = typer.Option(10_000, min=1, help="Number of SampleEvents to send."),
    partitions: int = typer.Option(3, min=1, help="Partitions of the check topic."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Round-trip SampleEvents through Kafka and compare what comes back (starts the local Kafka if needed)."""
    from modyn_stream.exceptions import ModynStreamError
    from modyn_stream.kafka.connect import connected
    from modyn_stream.roundtrip import run_roundtrip

    with connected(kafka_settings(bootstrap, namespace), say=err.print) as settings, err.status("") as status:

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
