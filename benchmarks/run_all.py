"""Every benchmark in turn, then one table of their headline figures, also saved as benchmarks/results/all.json.

Each benchmark runs as its own process (chDB opens one directory per process) against one Kafka:
`MODYN_KAFKA_BOOTSTRAP`, else a running local one, else one started here and stopped at the end.

    .venv/bin/python benchmarks/run_all.py            # full sizes (tens of minutes on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick    # small sizes: checks they all run (minutes)
    .venv/bin/python benchmarks/run_all.py --only pipeline,freshness
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from benchmarks._report import RESULTS, machine

HERE = Path(__file__).resolve().parent
# name -> (script, results file, full arguments, quick arguments)
BENCHMARKS = {
    "codec": ("codec.py", "codec", [], []),
    "ingest": ("ingest.py", "ingest", [], ["--samples", "30000"]),
    "selection": ("selection.py", "selection", [], ["--rows", "1000000"]),
    "trainer": ("trainer.py", "trainer-cpu", [], ["--samples", "5000", "--repeat", "1"]),
    "pipeline": ("pipeline.py", "pipeline", [], ["--samples", "example", "--repeat", "1"]),
    "scale": ("scale.py", "scale", [], ["--samples", "20000,60000"]),
    "freshness": ("freshness.py", "freshness", [], ["--rounds", "2"]),
    "drift": ("drift.py", "drift", [], ["--samples", "1000", "--window", "1000", "--interval", "100", "--repeat", "1"]),
    "downsampling": ("downsampling.py", "downsampling", [], ["--samples", "1000", "--holdout", "200", "--repeat", "1"]),
}


def _figure(value: object, unit: str = "") -> str:
    if not isinstance(value, int | float):
        return "-" if value is None else str(value)
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return f"{text} {unit}".strip()


def main() -> None:
    from modyn_stream.kafka.config import KafkaSettings
    from modyn_stream.kafka.connect import connected

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, to check that every benchmark runs")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help=f"comma-separated, of {', '.join(BENCHMARKS)}")
    args = parser.parse_args()
    chosen = args.only.split(",")
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    console = Console()
    if not console.is_terminal:
        console.width = 200
    rows, failed = [], []
    with connected(KafkaSettings.from_env(), say=console.print) as settings:
        env = {**os.environ, "MODYN_KAFKA_BOOTSTRAP": settings.bootstrap_servers}
        for name in chosen:
            script, result_name, full, quick = BENCHMARKS[name]
            console.rule(f"{name} ({script})")
            started = time.time()
            done = subprocess.run([sys.executable, str(HERE / script), *(quick if args.quick else full)], env=env)
            result = RESULTS / f"{result_name}.json"
            if done.returncode != 0 or not result.exists() or json.loads(result.read_text())["at"] < started:
                failed.append(name)
                continue
            for figure in json.loads(result.read_text())["summary"]:
                rows.append({"benchmark": name, **figure, "seconds_run": time.time() - started})
    facts = machine()
    table = Table(title=f"modyn-stream benchmarks ({facts['cpu_count']} cores, {facts['machine']}, "
                  f"Python {facts['python']}{', quick sizes' if args.quick else ''})")  # fmt: skip
    for column in ("benchmark", "measure", "value", "baseline", "ratio", "target", "met"):
        table.add_column(column)
    for row in rows:
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[row["met"]]
        value, baseline = _figure(row["value"], row["unit"]), _figure(row["baseline"], row["unit"])
        table.add_row(
            row["benchmark"], row["measure"], value, baseline, _figure(row["ratio"]), row["target"] or "-", met
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "all.json"
    path.write_text(json.dumps({"at": time.time(), "machine": facts, "quick": args.quick, "failed": failed,
                                "rows": rows}, indent=2))  # fmt: skip
    console.print(f"saved {path}")
    if failed:
        console.print(f"[red]failed:[/] {', '.join(failed)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
