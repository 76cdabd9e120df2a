"""DataDriftTrigger's decisions, one evaluation interval at a time, as Modyn's DataDriftTrigger makes them.

Evaluation points are every `evaluation_interval_data_points`-th sample in (event_time, key) order. At each:
- the first always fires (there is no model to compare with yet);
- while the warmup lasts, the warmup policy decides and the windows restart at every point; at its last
  interval, criteria that calibrate see the distances of each warmup reference against the current window;
- after it, every metric compares the reference window (the samples up to the last trigger) with the current
  window (those after it, or up to the point with `allow_overlap`), its criterion decides, the vote fires.

Windows are defined by two points, the last reset and the evaluation point, so a decision depends on the
stream and the model versions only. On embeddings, a decision needs the model of the last trigger: it waits
(returns None) until that model is stored, however fast training is.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.schema.drift import AmountWindowingStrategy, DataDriftTrigger
from modyn_stream.pipeline.schema.simple_triggers import AtLeastN
from modyn_stream.timeutil import parse_duration
from modyn_stream.triggers.criteria import decide
from modyn_stream.triggers.drift.metrics import MetricResult, measure
from modyn_stream.triggers.drift.vectors import WindowVectors
from modyn_stream.triggers.policies import START, Boundary, next_firing

WAITING = object()  # a decision that needs a model version not stored yet


@dataclass
class DriftState:
    """What a DataDriftTrigger carries from one evaluation to the next (recorded with each, as JSON)."""

    evaluations: int = 0
    point: Boundary = START  # the last evaluation point
    reset: Boundary = START  # where the reference window ends and the current one starts
    triggered_once: bool = False
    warmup_done: int = 0
    warmup_last: Boundary = START  # the warmup policy's last firing
    warmup_refs: list[Boundary] = field(default_factory=list)  # reference ends of the warmup, to calibrate on
    seen: dict[str, list[float]] = field(default_factory=dict)  # each metric's values, for dynamic criteria

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DriftState:
        raw = json.loads(text)
        points = {k: Boundary(**raw.pop(k)) for k in ("point", "reset", "warmup_last")}
        refs = [Boundary(**b) for b in raw.pop("warmup_refs")]
        return cls(**raw, **points, warmup_refs=refs)


@dataclass(frozen=True)
class DriftEvaluation:
    point: Boundary
    phase: str  # first | warmup | detection
    fired: bool
    reason: str
    state: DriftState
    model_index: int | None = None
    reference_samples: int = 0
    current_samples: int = 0
    results: dict[str, tuple[MetricResult, bool, float | None]] = field(default_factory=dict)


class DriftDetector:
    """Evaluates DataDriftTriggers over a `ClickHouseSampleIndex`; one per trigger service."""

    def __init__(self, vectors: WindowVectors) -> None:
        self.vectors = vectors

    def next_point(self, policy: DataDriftTrigger, index, state: DriftState) -> Boundary | None:
        return index.nth_after(state.point, policy.evaluation_interval_data_points)

    def evaluate(self, pid: str, config: PipelineConfig, index, state: DriftState, last_trigger: int | None):
        """The decision at the next evaluation point; None: no point yet; WAITING: its model is not stored yet."""
        policy: DataDriftTrigger = config.trigger
        point = self.next_point(policy, index, state)
        if point is None:
            return None
        after = replace(state, point=point, evaluations=state.evaluations + 1, seen=dict(state.seen),
                        warmup_refs=list(state.warmup_refs))  # fmt: skip
        needs_model = policy.features == "embeddings"
        model_index = last_trigger if needs_model else None
        if state.triggered_once and needs_model and self.vectors.model(pid, config, last_trigger) is None:
            return WAITING
        if not state.triggered_once or state.warmup_done < warmup_count(policy):
            return self._warmup(pid, config, index, state, after, point, model_index)
        reference, current = self._windows(policy, index, state.reset, point)
        results, votes = {}, 0
        ref = self.vectors.vectors(pid, config, reference, model_index, key=("reference", state.reset))
        cur = self.vectors.vectors(pid, config, current, model_index)
        for name, metric in sorted(policy.metrics.items()):
            result = measure(metric, ref, cur, _seed(config, name, point))
            fired, threshold, after.seen[name] = decide(
                metric.decision_criterion, result.distance, state.seen.get(name, []), result.test_drift
            )
            results[name] = (result, fired, threshold)
            votes += fired
        vote = policy.aggregation_strategy
        needed = vote.n if isinstance(vote, AtLeastN) else len(results) // 2 + 1
        fired = votes >= needed
        if fired:
            after.reset = point
        summary = "; ".join(
            f"{name} {r.distance:.6g}" + (f" vs {t:.6g}" if t is not None else "") + (" drift" if f else "")
            for name, (r, f, t) in results.items()
        )
        reason = f"DataDriftTrigger({vote.id} {votes}/{len(results)}): {summary}"
        return DriftEvaluation(point, "detection", fired, reason, after, model_index, len(ref), len(cur), results)

    def _warmup(self, pid, config, index, state: DriftState, after: DriftState, point: Boundary, model_index):
        policy: DataDriftTrigger = config.trigger
        warming = state.warmup_done < warmup_count(policy)
        delegated, reason = True, "DataDriftTrigger: first evaluation (no model to compare with yet)"
        if warming:
            after.warmup_refs.append(state.reset if state.triggered_once else point)
            after.warmup_done += 1
            delegated, after.warmup_last = _warmup_fires(policy, index, state.warmup_last, point)
            if state.triggered_once:
                reason = (
                    f"DataDriftTrigger warmup {after.warmup_done}/{warmup_count(policy)}: {policy.warmup_policy.id}"
                )
        fired = not state.triggered_once or delegated
        after.triggered_once = True
        if warming and after.warmup_done == warmup_count(policy):
            self._calibrate(pid, config, index, after, point, model_index if state.triggered_once else None)
            after.warmup_refs = []
        if warming or fired:
            after.reset = point  # Modyn restarts the windows at every warmup interval, and at every trigger
        phase = "first" if not state.triggered_once else "warmup"
        return DriftEvaluation(point, phase, fired, reason, after, None)

    def _calibrate(self, pid, config, index, after: DriftState, point: Boundary, model_index) -> None:
        """Show the calibrating criteria the distance of each warmup reference to the current window."""
        policy: DataDriftTrigger = config.trigger
        calibrating = {n: m for n, m in sorted(policy.metrics.items()) if m.decision_criterion.needs_calibration}
        if not calibrating:
            return
        if policy.features == "embeddings" and model_index is None:
            return  # warmup of one interval: there is no model yet, so nothing to calibrate on
        for reset in after.warmup_refs:
            reference, current = self._windows(policy, index, reset, point)
            if not reference.num_rows or not current.num_rows:
                continue
            ref = self.vectors.vectors(pid, config, reference, model_index)
            cur = self.vectors.vectors(pid, config, current, model_index)
            for name, metric in calibrating.items():
                result = measure(metric, ref, cur, _seed(config, name, reset))
                after.seen[name] = decide(metric.decision_criterion, result.distance, after.seen.get(name, []))[2]

    def _windows(self, policy: DataDriftTrigger, index, reset: Boundary, point: Boundary):
        """(reference, current) sample tables, at most `sample_size` each (a seeded draw, in order)."""
        windows = policy.windowing_strategy
        after = None if windows.allow_overlap else reset
        if isinstance(windows, AmountWindowingStrategy):
            reference = index.window(reset, last=windows.amount_ref)
            current = index.window(point, after=after, last=windows.amount_cur)
        else:
            reference = index.window(reset, since=reset.event_time - parse_duration(windows.limit_ref))
            current = index.window(point, after=after, since=point.event_time - parse_duration(windows.limit_cur))
        return _sampled(reference, policy.sample_size, reset), _sampled(current, policy.sample_size, point)


def warmup_count(policy: DataDriftTrigger) -> int:
    """Modyn's rule: without a warmup policy there is no warmup."""
    return (policy.warmup_intervals or 0) if policy.warmup_policy is not None else 0


def _warmup_fires(policy: DataDriftTrigger, index, last: Boundary, point: Boundary) -> tuple[bool, Boundary]:
    """Whether the warmup policy fires in (last, point], and its last firing there."""
    fired = False
    while (firing := next_firing(policy.warmup_policy, index, last, 0)) is not None and firing.boundary <= point:
        fired, last = True, firing.boundary
    return fired, last


def _seed(config: PipelineConfig, name: str, point: Boundary) -> int:
    return zlib.crc32(f"{config.training.seed}/{name}/{point.event_time}/{point.key}".encode())


def _sampled(rows, size: int | None, point: Boundary):
    """At most `size` of the rows, drawn with a seed of the window's end so the same window gives the same draw."""
    if size is None or rows.num_rows <= size:
        return rows
    rng = np.random.default_rng(zlib.crc32(f"{point.event_time}/{point.key}".encode()))
    return rows.take(np.sort(rng.choice(rows.num_rows, size, replace=False)))
