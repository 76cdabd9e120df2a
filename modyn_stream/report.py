"""Reports of a run: the model x window matrix, the active model over time, a per-trigger table.

`write_report` reads ClickHouse once and writes plain files (CSV, PNG, one self-contained HTML
page) under the run's `report/` directory. `compare` overlays runs from those CSVs alone, so it
needs no database (an embedded ClickHouse opens one directory per process).
"""

from __future__ import annotations

import base64
import csv
import html
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

from modyn_stream.metadata import MetadataStore
from modyn_stream.timeutil import format_time

matplotlib.use("Agg")  # files only, never a window

PRIMARY = ("Accuracy(top1)", "F1Score(macro)", "RocAuc", "loss")


@dataclass(frozen=True)
class Summary:
    name: str
    triggers: int
    training_s: float
    mean_active: float | None  # mean over windows of the active model's primary metric
    metric: str | None
    curve: list[tuple[int, int, float]]  # (window start, active model, value)


def _primary(metrics: set[str]) -> str | None:
    return next((m for m in PRIMARY if m in metrics), min(metrics) if metrics else None)


def write_report(store: MetadataStore, pid: str, out: Path, title: str) -> Path:
    """Write CSVs, PNGs and report.html for one pipeline; return the HTML page's path."""
    out.mkdir(parents=True, exist_ok=True)
    evaluations = store.query(
        "SELECT trigger_index, model_id, dataset, toUnixTimestamp64Milli(window_start), "
        "toUnixTimestamp64Milli(window_end), metric, value, num_samples FROM evaluations FINAL "
        "WHERE pipeline_id = {p:String} ORDER BY dataset, metric, trigger_index, window_start",
        {"p": pid},
    )
    triggers = store.query(
        "SELECT t.trigger_index, toUnixTimestamp64Milli(t.boundary_event_time), t.num_new_samples, "
        "m.num_samples, m.samples_trained, m.timings_s['train'], m.timings_s['downsample'], m.timings_s['total'], "
        "m.final_loss, t.reason "
        "FROM triggers AS t FINAL LEFT JOIN (SELECT * FROM models FINAL WHERE pipeline_id = {p:String}) AS m "
        "ON t.trigger_index = m.trigger_index WHERE t.pipeline_id = {p:String} ORDER BY t.trigger_index",
        {"p": pid},
    )
    _write_csv(out / "evaluations.csv", ["trigger", "model", "dataset", "window_start", "window_end", "metric",
                                         "value", "samples"], evaluations)  # fmt: skip
    columns = [
        "trigger",
        "boundary",
        "new_samples",
        "training_set",
        "samples_trained",
        "train_s",
        "downsample_s",
        "total_s",
        "final_loss",
        "reason",
    ]
    _write_csv(out / "triggers.csv", columns, triggers)
    decisions = _policy_decisions(store, pid)
    if decisions:
        _write_csv(out / "decisions.csv", DECISION_COLUMNS, decisions)
    boundaries = {row[0]: row[1] for row in triggers}
    sections = [f"<h1>{html.escape(title)}</h1><p>pipeline <code>{html.escape(pid)}</code></p>"]
    for dataset in sorted({row[2] for row in evaluations}):
        rows = [r for r in evaluations if r[2] == dataset]
        metric = _primary({r[5] for r in rows})
        values = {(r[0], r[3]): r[6] for r in rows if r[5] == metric}
        models = sorted({key[0] for key in values})
        windows = sorted({key[1] for key in values})
        stem = f"{dataset}_{metric}".replace("(", "_").replace(")", "")
        _write_csv(out / f"matrix_{stem}.csv", ["trigger", *map(format_time, windows)],
                   [[m, *(values.get((m, w), "") for w in windows)] for m in models])  # fmt: skip
        heatmap = _heatmap(out / f"heatmap_{stem}.png", values, models, windows, boundaries, f"{metric} on {dataset}")
        active = active_series(values, boundaries)
        _write_csv(out / f"active_{stem}.csv", ["window_start", "trigger", "value"], active)
        line = _line(out / f"active_{stem}.png", {title: active}, metric, f"active model, {dataset}")
        sections.append(f"<h2>{html.escape(dataset)}: {html.escape(metric)}</h2>{_img(heatmap)}{_img(line)}")
    sections.append("<h2>Triggers</h2>" + _table(["trigger", "boundary", "new samples", "training set",
                                                  "samples trained", "train s", "downsample s", "total s",
                                                  "final loss"],
                                                 [[t[0], format_time(t[1]), *t[2:9]] for t in triggers]))  # fmt: skip
    if decisions:
        sections.append("<h2>Trigger decisions</h2>" + _table(DECISION_COLUMNS, decisions))
    page = out / "report.html"
    page.write_text(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
                    "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:right}</style>"
                    + "".join(sections))  # fmt: skip
    return page


DECISION_COLUMNS = ["evaluation", "boundary", "phase", "fired", "trigger", "model", "metric", "value", "threshold",
                    "metric_fired", "unreadable_samples"]  # fmt: skip


def _policy_decisions(store: MetadataStore, pid: str) -> list[tuple]:
    """One row per decision of a batched trigger and metric or criterion (none: one row without)."""
    rows = store.query(
        "SELECT evaluation_index, toUnixTimestamp64Milli(boundary_event_time), phase, fired, trigger_index, "
        "model_trigger_index, m.1, m.2, m.3, m.4, length(skipped_keys) FROM trigger_evaluations FINAL "
        "LEFT ARRAY JOIN arrayZip(metric, value, threshold, metric_fired) AS m WHERE pipeline_id = {p:String} "
        "ORDER BY evaluation_index, m.1",
        {"p": pid},
    )
    return [row if row[6] else (*row[:6], None, None, None, None, row[10]) for row in rows]


def active_series(values: dict[tuple[int, int], float], boundaries: dict[int, int]) -> list[tuple[int, int, float]]:
    """Per window, the value of the latest model trained on data up to the window's start.

    A model whose boundary is the window's start counts (BetweenTwoTriggers windows begin there).

    >>> active_series({(0, 10): 0.5, (1, 10): 0.6, (0, 30): 0.4, (1, 30): 0.9}, {0: 5, 1: 20})
    [(10, 0, 0.5), (30, 1, 0.9)]
    >>> active_series({(0, 5): 0.5, (1, 20): 0.7}, {0: 5, 1: 20})
    [(5, 0, 0.5), (20, 1, 0.7)]
    """
    series = []
    for window in sorted({w for _, w in values}):
        available = [m for m, b in boundaries.items() if b <= window and (m, window) in values]
        if available:
            model = max(available)
            series.append((window, model, values[(model, window)]))
    return series


def summarize(report_dir: Path, name: str) -> Summary:
    """A run's summary from its report CSVs (see `write_report`)."""
    triggers = _read_csv(report_dir / "triggers.csv")
    metric, curve = active_curve(report_dir)
    values = [point[2] for point in curve]
    return Summary(
        name,
        len(triggers),
        sum(float(row["train_s"] or 0) for row in triggers),
        sum(values) / len(values) if values else None,
        metric,
        curve,
    )


def active_curve(report_dir: Path) -> tuple[str | None, list[tuple[int, int, float]]]:
    """(metric, [(window start, model, value)]) of the run's first active-model series."""
    actives = sorted(report_dir.glob("active_*.csv"))
    if not actives:
        return None, []
    points = [(int(r["window_start"]), int(r["trigger"]), float(r["value"])) for r in _read_csv(actives[0])]
    return actives[0].stem.removeprefix("active_"), points


def compare(report_dirs: dict[str, Path], out: Path) -> tuple[list[Summary], Path]:
    """Overlay the active-model curves of several runs; return their summaries and the plot."""
    out.mkdir(parents=True, exist_ok=True)
    summaries = [summarize(directory, name) for name, directory in report_dirs.items()]
    metric = next((s.metric for s in summaries if s.metric), "metric")
    curves = {s.name: s.curve for s in summaries if s.curve}
    return summaries, _line(out / "compare.png", curves, metric, "active model over time")


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _heatmap(path: Path, values, models, windows, boundaries, title: str) -> Path:
    grid = [[values.get((m, w), math.nan) for w in windows] for m in models]
    fig, ax = plt.subplots(figsize=(max(6, len(windows) * 0.45), max(3, len(models) * 0.4)))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(models)), [f"model {m}" for m in models])
    ax.set_xticks(range(len(windows)), [format_time(w)[:10] for w in windows], rotation=70, fontsize=7)
    for row, model in enumerate(models):  # where each model's training data ends
        if model in boundaries:
            column = sum(w <= boundaries[model] for w in windows) - 0.5
            ax.plot([column, column], [row - 0.5, row + 0.5], color="red", linewidth=2)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("window start (red: where the model's training data ends)", fontsize=8)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _line(path: Path, curves: dict[str, list[tuple[int, int, float]]], metric: str, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for name, points in curves.items():
        ax.plot([format_time(p[0])[:10] for p in points], [p[2] for p in points], marker="o", label=name)
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=70, labelsize=7)
    if curves:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _img(path: Path) -> str:
    return f'<p><img alt="{path.stem}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"></p>'


def _table(header: list[str], rows) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
