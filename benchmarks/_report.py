"""Printing and saving benchmark results: one table, plus JSON under benchmarks/results/."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, object]:
    return {"cpu_count": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()}


def report(name: str, rows: list[dict[str, object]], summary: list[dict[str, object]]) -> Path:
    """Print `rows` (dicts with the same keys) as a table and save them with the machine's facts.

    `summary` holds the benchmark's headline figures for `benchmarks/run_all.py`'s table, each a dict
    with measure, value, unit, baseline (same unit, or None), ratio (or None), target and met
    (True/False, or None without a target)."""
    table = Table(title=f"{name} ({machine()['cpu_count']} cores, Python {machine()['python']})")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row.values()))
    console = Console()
    if not console.is_terminal:
        console.width = 160  # a log or a pipe: do not squeeze the columns
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps(
            {"benchmark": name, "at": time.time(), "machine": machine(), "rows": rows, "summary": summary}, indent=2
        )
    )
    return path
