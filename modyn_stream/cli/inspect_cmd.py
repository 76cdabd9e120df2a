"""`modyn-stream tail` and `modyn-stream topics`."""

from __future__ import annotations

import typer
from rich.table import Table

from modyn_stream.cli._console import out
from modyn_stream.cli._options import Bootstrap, Namespace, kafka_settings


def tail(
    topic: str = typer.Argument(..., help="Topic to read, e.g. modyn.samples.digits or modyn.dlq."),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Start at the oldest event."),
    follow: bool = typer.Option(False, "--follow", "-F", help="Keep printing new events until Ctrl-C."),
    last: int = typer.Option(10, "--last", min=0, help="Without --from-beginning: events per partition to show."),
    max_messages: int = typer.Option(None, "--max", min=1, help="Stop after this many events."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    bootstrap: str = Bootstrap,
    namespace: str = Namespace,
) -> None:
    """Print a topic's events decoded; bytes that are not an event are shown as such."""
    from modyn_stream.inspect import tail as read_tail
    from modyn_stream.kafka.connect import connected

    with connected(kafka_settings(bootstrap, namespace), start_local=False) as settings:
        entries = read_tail(
            settings, topic, from_beginning=from_beginning, follow=follow, last=last, max_messages=max_messages
        )
        for entry in entries:
            print(entry.as_json() if as_json else entry.as_line(), flush=True)


def topics(bootstrap: str = Bootstrap, namespace: str = Namespace) -> None:
    """List the namespace's topics with partitions, end offsets and consumer-group lag."""
    from modyn_stream.inspect import overview
    from modyn_stream.kafka.connect import connected

    with connected(kafka_settings(bootstrap, namespace), start_local=False) as settings:
        rows = overview(settings, prefix=f"{settings.namespace}.")
    table = Table(title=f"topics of namespace {settings.namespace!r} on {settings.bootstrap_servers}")
    for column in ("topic", "partitions", "end offsets", "consumer groups (lag)"):
        table.add_column(column)
    for row in rows:
        lag = ", ".join(f"{g} ({n:,})" for g, n in sorted(row.lag_by_group.items())) or "-"
        table.add_row(row.name, str(row.partitions), f"{row.end_offsets:,}", lag)
    out.print(table)
