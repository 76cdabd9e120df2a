"""DataDriftTrigger's decisions, one evaluation interval at a time, as Modyn's DataDriftTrigger makes them.

Evaluation points are every `evaluation_interval_data_points`-th sample in (event_time, key) order. At each:
- the first always fires (there is no model to compare with yet);
- while the warmup lasts, the warmup policy decides and the windows restart at every point; at its last
  interval, criteria that calibrate see the distance of each warmup reference to that interval's current window;
- after it, every metric compares the reference window (the samples up to the last trigger) with the current
  window (those after it, or up to the point with `allow_overlap`), its criterion decides, the vote fires.

Windows are defined by two points, the last reset and the evaluation point, so a decision depends on the
stream and the model versions only. On embeddings, a decision needs the model of the last trigger: it waits
(returns WAITING) until that model is stored, however fast training is.
"""

from __future__ import annotations

import zlib

import numpy as np

from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.schema.drift import AmountWindowingStrategy, DataDriftTrigger
from modyn_stream.timeutil import parse_duration
from modyn_stream.triggers.batched import (
    WAITING,
    Decision,
    Outcome,
    PolicyState,
    in_warmup,
    merged,
    next_point,
    seed_of,
    summary,
    unreadable,
    voted,
    warmup_count,
    warmup_decides,
)
from modyn_stream.triggers.criteria import decide
from modyn_stream.triggers.drift.current_window import CurrentWindows
from modyn_stream.triggers.drift.metrics import measure
from modyn_stream.triggers.policies import Boundary


class DriftDetector:
    """Evaluates DataDriftTriggers over a `ClickHouseSampleIndex`; one per trigger service."""

    def __init__(self, data) -> None:
        self.data = data  # a WindowData: the vectors of a window, the stored model versions
        self._kept: dict[str, tuple] = {}  # per pipeline: ((reference end, model), its vectors, metric caches)
        self._current_windows = CurrentWindows(data)

    def evaluate(self, pid: str, config: PipelineConfig, index, state: PolicyState, last_trigger: int | None):
        """The decision at the next evaluation point; None: no point yet; WAITING: its model is not stored yet."""
        policy: DataDriftTrigger = config.trigger
        embeddings = policy.features == "embeddings"
        point = next_point(self.data, pid, config, index, state, last_trigger, needs_model=embeddings)
        if point is None or point is WAITING:
            return point
        after = state.advanced(point)
        model_index = last_trigger if embeddings else None
        if in_warmup(policy, state):
            return self._warmup(pid, config, index, state, after, point, model_index)
        ref, caches, skipped = self._reference(pid, config, index, state.reset, model_index)
        current = self._current(policy, index, state.reset, point, sample=False)
        if (sampled := _sampled(current, policy.sample_size, point)) is current:  # read and embedded chunk by chunk
            window = self._current_windows.window(pid, config, index, current, model_index)
            cur, chunks, skipped = window.vectors, window.chunks, merged(skipped, window.skipped)
        else:
            (cur, kept), chunks = self.data.vectors(pid, config, sampled, model_index), None
            skipped = merged(skipped, unreadable(sampled, kept))
        if not len(ref) or not len(cur):
            empty = "current" if len(ref) else "reference"
            reason = f"DataDriftTrigger: no readable sample in the {empty} window"
            return Decision(point, "detection", False, reason, after, model_index, len(ref), len(cur), {}, skipped)
        outcomes = {}
        for name, metric in sorted(policy.metrics.items()):
            result = measure(metric, ref, cur, seed_of(config, name, point), caches.setdefault(name, {}), chunks)
            fired, threshold, after.seen[name] = decide(
                metric.decision_criterion, result.distance, state.seen.get(name, []), result.test_drift
            )
            outcomes[name] = Outcome(result.distance, fired, threshold, result.test_drift, result.p_val,
                                     result.threshold)  # fmt: skip
        fired, votes = voted(policy.aggregation_strategy, outcomes)
        reason = f"DataDriftTrigger({policy.aggregation_strategy.id} {votes}/{len(outcomes)}): {summary(outcomes)}"
        return Decision(point, "detection", fired, reason, after, model_index, len(ref), len(cur), outcomes, skipped)

    def _warmup(self, pid, config, index, state: PolicyState, after: PolicyState, point: Boundary, model_index):
        policy: DataDriftTrigger = config.trigger
        warming = state.warmup_done < warmup_count(policy)
        if warming:
            after.warmup_refs.append(state.reset if state.triggered_once else point)
        fired = warmup_decides(policy, index, state, after, point)
        reason = "DataDriftTrigger: first evaluation (no model to compare with yet)"
        if state.triggered_once:
            reason = f"DataDriftTrigger warmup {after.warmup_done}/{warmup_count(policy)}: {policy.warmup_policy.id}"
        skipped = ()
        if warming and after.warmup_done == warmup_count(policy):
            skipped = self._calibrate(pid, config, index, after, point, model_index if state.triggered_once else None)
            after.warmup_refs = []
        if warming:
            after.reset = point  # Modyn restarts the windows at every warmup interval (and at every trigger)
        phase = "first" if not state.triggered_once else "warmup"
        return Decision(point, phase, fired, reason, after, skipped=skipped)

    def _calibrate(self, pid, config, index, after: PolicyState, point: Boundary, model_index) -> tuple[str, ...]:
        """Show the calibrating criteria the distance of each warmup reference to the last warmup interval's
        current window (one window for all, as Modyn compares them); return the keys found unreadable."""
        policy: DataDriftTrigger = config.trigger
        calibrating = {n: m for n, m in sorted(policy.metrics.items()) if m.decision_criterion.needs_calibration}
        if not calibrating or (policy.features == "embeddings" and model_index is None):
            return ()  # nothing calibrates, or a warmup of one interval: no model to compare with yet
        current = self._current(policy, index, after.reset, point)
        cur, kept = self.data.vectors(pid, config, current, model_index)
        skipped = unreadable(current, kept)
        for reset in after.warmup_refs if len(cur) else ():
            reference = self._reference_rows(policy, index, reset)
            ref, kept = self.data.vectors(pid, config, reference, model_index)
            skipped = merged(skipped, unreadable(reference, kept))
            for name, metric in calibrating.items() if len(ref) else ():
                result = measure(metric, ref, cur, seed_of(config, name, reset))
                after.seen[name] = decide(metric.decision_criterion, result.distance, after.seen.get(name, []))[2]
        return skipped

    def _reference(self, pid: str, config, index, reset: Boundary, model_index):
        """The vectors of the reference window ending at `reset`, each metric's cache of what depends on them
        alone, and the window's unreadable keys: read, embedded and computed once per reference and model (Modyn
        does it at every decision)."""
        key = (reset, model_index)
        kept = self._kept.get(pid)
        if kept is None or kept[0] != key:
            rows = self._reference_rows(config.trigger, index, reset)
            vectors, readable = self.data.vectors(pid, config, rows, model_index)
            kept = self._kept[pid] = (key, vectors, {}, unreadable(rows, readable))
        return kept[1], kept[2], kept[3]

    def _reference_rows(self, policy: DataDriftTrigger, index, reset: Boundary):
        """The reference window ending at `reset`: at most `sample_size` (a seeded draw, in order)."""
        windows = policy.windowing_strategy
        if isinstance(windows, AmountWindowingStrategy):
            rows = index.window(reset, last=windows.amount_ref)
        else:
            rows = index.window(reset, since=reset.event_time - parse_duration(windows.limit_ref))
        return _sampled(rows, policy.sample_size, reset)

    def _current(self, policy: DataDriftTrigger, index, reset: Boundary, point: Boundary, sample: bool = True):
        """The current window at `point` (after `reset` unless `allow_overlap`), at most `sample_size` (`sample`)."""
        windows = policy.windowing_strategy
        after = None if windows.allow_overlap else reset
        if isinstance(windows, AmountWindowingStrategy):
            rows = index.window(point, after=after, last=windows.amount_cur)
        else:
            rows = index.window(point, after=after, since=point.event_time - parse_duration(windows.limit_cur))
        return _sampled(rows, policy.sample_size, point) if sample else rows


def _sampled(rows, size: int | None, point: Boundary):
    """At most `size` of the rows, drawn with a seed of the window's end so the same window gives the same draw."""
    if size is None or rows.num_rows <= size:
        return rows
    rng = np.random.default_rng(zlib.crc32(f"{point.event_time}/{point.key}".encode()))
    return rows.take(np.sort(rng.choice(rows.num_rows, size, replace=False)))
