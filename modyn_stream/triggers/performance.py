"""PerformanceTrigger's decisions (hindsight), one evaluation interval at a time, as Modyn's PerformanceTrigger.

At each evaluation point the model of the last trigger is scored on the interval's labelled samples (waiting
until that model is stored, so training speed changes no trigger). The first decision always fires; during
the warmup the warmup policy decides, and dynamic criteria calibrate on the scores it sees (Modyn leaves them
empty, so its first decision after the warmup always fires); after it any criterion fires the trigger:
- StaticPerformanceThreshold: the metric is at or below `metric_threshold`;
- DynamicQuantile / DynamicRollingAverage: the metric is low against its last `window_size` values;
- StaticNumberMisclassification: the misclassifications since the last trigger beyond what a model of the
  expected accuracy would make (`expected_accuracy`, or forecast from the first decision after each of the last
  `performance_triggers_window_size` triggers) reach `avoidable_misclassification_threshold`.
"""

from __future__ import annotations

import torch

from modyn_stream.evaluation.metrics import compute
from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.schema.performance import (
    PerformanceTrigger,
    StaticNumberAvoidableMisclassificationCriterion,
    full_name,
)
from modyn_stream.selection.manifest import numeric
from modyn_stream.triggers.batched import (
    WAITING,
    Decision,
    Outcome,
    PolicyState,
    in_warmup,
    next_point,
    summary,
    unreadable,
    warmup_decides,
)
from modyn_stream.triggers.criteria import decide
from modyn_stream.triggers.forecast import forecast


def avoidable(criterion, wrong: int, samples: int, expected_memory: list[float], method: str) -> float:
    """Misclassifications in an interval beyond those of a model of the expected accuracy (`expected_accuracy`,
    or forecast from the first decisions after triggers; none yet: 0), at least 0 unless `allow_reduction`."""
    expected = criterion.expected_accuracy
    if expected is None:
        expected = forecast(expected_memory, method)
    count = 0.0 if expected is None else wrong - (1 - expected) * samples
    return count if count >= 0 or criterion.allow_reduction else 0.0


def scored(data, pid, config, index, state: PolicyState, after: PolicyState, point, model_index):
    """(scores by Modyn's metric names, labelled samples, misclassified ones, unreadable keys) of the model of
    trigger `model_index` on the interval since the last decision; the first accuracy of a new model (what a
    retrained model achieves) is kept in `after` for the expected accuracy."""
    policy = config.trigger
    dataset = policy.evaluation.dataset
    rows = index.window(point, after=state.point, labelled=True)
    after.fresh = False
    if rows.num_rows == 0:
        return {}, 0, 0, ()
    decoding = dataset if dataset.decoder is not None else config.data  # its own decoder, else the pipeline's
    logits, kept = data.outputs(pid, config, rows, model_index, decoding, policy.evaluation.device)
    skipped = unreadable(rows, kept)
    if not kept.any():
        return {}, 0, 0, skipped
    logits, labels = logits.float(), torch.from_numpy(numeric(rows["label"])[kept])
    scores = {full_name(metric): compute(metric, logits, labels) for metric in dataset.metrics}
    if state.fresh:
        after.expected = [*after.expected, scores["Accuracy"]][-policy.performance_triggers_window_size :]
    return scores, len(labels), int((logits.argmax(dim=1) != labels).sum()), skipped


class PerformanceJudge:
    """Evaluates PerformanceTriggers over a `ClickHouseSampleIndex`; one per trigger service."""

    def __init__(self, data) -> None:
        self.data = data  # a WindowData: the outputs of a model version on a window, the stored versions

    def evaluate(self, pid: str, config: PipelineConfig, index, state: PolicyState, last_trigger: int | None):
        """The decision at the next evaluation point; None: no point yet; WAITING: its model is not stored yet."""
        policy: PerformanceTrigger = config.trigger
        point = next_point(self.data, pid, config, index, state, last_trigger)
        if point is None or point is WAITING:
            return point
        after = state.advanced(point)
        scores, samples, wrong, skipped = {}, 0, 0, ()
        if state.triggered_once:
            scores, samples, wrong, skipped = scored(self.data, pid, config, index, state, after, point, last_trigger)
        outcomes = {}
        if in_warmup(policy, state):
            fired = warmup_decides(policy, index, state, after, point)
            for name, criterion in sorted(policy.decision_criteria.items()):  # calibrate on what the warmup sees
                if samples and hasattr(criterion, "window_size"):
                    after.seen[name] = decide(criterion, scores[criterion.metric], after.seen.get(name, []),
                                              higher=False)[2]  # fmt: skip
            phase = "warmup" if state.triggered_once else "first"
            reason = "PerformanceTrigger: first evaluation (no model to score yet)"
            if state.triggered_once:
                reason = f"PerformanceTrigger warmup {after.warmup_done}: {policy.warmup_policy.id}"
        else:
            for name, criterion in sorted(policy.decision_criteria.items()):
                outcomes[name] = self._criterion(policy, criterion, name, scores, samples, wrong, state, after)
            fired = any(o.fired for o in outcomes.values())
            phase, reason = "detection", f"PerformanceTrigger: {summary(outcomes)}"
        model = last_trigger if state.triggered_once else None
        return Decision(point, phase, fired, reason, after, model, current_samples=samples, results=outcomes,
                        skipped=skipped)  # fmt: skip

    def _criterion(self, policy, criterion, name, scores, samples, wrong, state, after) -> Outcome:
        if isinstance(criterion, StaticNumberAvoidableMisclassificationCriterion):
            count = avoidable(criterion, wrong, samples, state.expected, policy.forecasting_method)
            after.counters[name] = state.counters.get(name, 0) + round(count)
            threshold = criterion.avoidable_misclassification_threshold
            return Outcome(after.counters[name], after.counters[name] >= threshold, threshold)
        if not samples:
            return Outcome(float("nan"), False)  # no labelled sample in the interval: nothing to judge
        value = scores[criterion.metric]
        fired, threshold, seen = decide(criterion, value, state.seen.get(name, []), higher=False)
        if hasattr(criterion, "window_size"):
            after.seen[name] = seen
        return Outcome(value, fired, threshold)
