"""The cost-aware triggers' decisions, as Modyn's DataIncorporationLatency and AvoidableMisclassification cost
triggers make them (see pipeline/schema/cost.py for the trade-off).

Regret is a latency in seconds of event time, kept in the policy state: at each interval, what was waiting
already waits the interval's length longer, and what arrives waits from its arrival (each sample from its
event time; avoidable misclassifications, which have no time of their own, half the interval). The training
cost of a trigger now is forecast for the samples waiting: by a ridge line over the (training-set size,
training seconds) of the last `cost_tracking_window_size` triggers, read from `models` (so a decision waits
for the model of the last trigger, as every batched trigger's does), or by `seconds_per_sample`.
"""

from __future__ import annotations

from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.schema.cost import AvoidableMisclassificationCostTrigger
from modyn_stream.triggers.batched import WAITING, Decision, Outcome, PolicyState, in_warmup, next_point, warmup_decides
from modyn_stream.triggers.forecast import COST_ALPHA, ridge_line
from modyn_stream.triggers.performance import avoidable, scored


def conversion_factor(policy) -> float:
    """Regret seconds per training second, under each trigger's name for it."""
    if isinstance(policy, AvoidableMisclassificationCostTrigger):
        return policy.avoidable_misclassification_latency_per_training_second
    return policy.incorporation_delay_per_training_second


class CostJudge:
    """Evaluates cost-aware triggers over a `ClickHouseSampleIndex`; one per trigger service."""

    def __init__(self, data) -> None:
        self.data = data  # a WindowData: the stored model versions and their outputs

    def evaluate(self, pid: str, config: PipelineConfig, index, state: PolicyState, last_trigger: int | None):
        """The decision at the next evaluation point; None: no point yet; WAITING: its model is not stored yet."""
        policy = config.trigger
        point = next_point(self.data, pid, config, index, state, last_trigger)
        if point is None or point is WAITING:
            return point
        after = state.advanced(point)
        rows = index.window(point, after=state.point)
        times = rows["t"].to_numpy() / 1000  # seconds, Modyn's unit
        start = state.point.event_time / 1000 if state.evaluations else times[0]
        duration = times[-1] - start
        waiting, latency = state.counters.get("waiting_regret", 0.0), state.counters.get("latency", 0.0)
        skipped = ()
        if isinstance(policy, AvoidableMisclassificationCostTrigger):
            new = 0.0
            if state.triggered_once:
                _, samples, wrong, skipped = scored(self.data, pid, config, index, state, after, point, last_trigger)
                new = avoidable(policy, wrong, samples, state.expected, policy.forecasting_method)
            latency += waiting * duration + new * duration / 2
        else:
            new = float(len(times))
            latency += waiting * duration + float((times[-1] - times).sum())
        unincorporated = state.counters.get("unincorporated", 0) + len(times)
        after.counters = {"waiting_regret": waiting + new, "latency": latency, "unincorporated": unincorporated}
        regret = latency * conversion_factor(policy)
        if in_warmup(policy, state):
            fired = warmup_decides(policy, index, state, after, point)
            phase = "warmup" if state.triggered_once else "first"
            outcomes, reason = {}, f"{policy.id}: {phase} ({'the first decision' if phase == 'first' else 'warmup'})"
        else:
            cost, model = self._cost(pid, policy, last_trigger, unincorporated)
            fired = regret >= cost
            outcomes = {"regret": Outcome(regret, fired, cost)}
            reason = f"{policy.id}: regret {regret:.6g} vs training {cost:.6g} s ({model})"
            phase = "detection"
        model_index = last_trigger if state.triggered_once else None
        return Decision(point, phase, fired, reason, after, model_index, current_samples=len(times), results=outcomes,
                        skipped=skipped)  # fmt: skip

    def _cost(self, pid: str, policy, last_trigger: int, samples: int) -> tuple[float, str]:
        """(forecast training seconds of a trigger on `samples`, which cost model gave it)."""
        if policy.cost_model == "linear":
            cost = policy.seconds_per_trigger + policy.seconds_per_sample * samples
            return cost, f"linear: {policy.seconds_per_trigger:g} s + {policy.seconds_per_sample:g} s/sample"
        rows = self.data.store.query(
            "SELECT num_samples, timings_s['train'] FROM models FINAL WHERE pipeline_id = {p:String} "
            "AND trigger_index <= {i:UInt32} ORDER BY trigger_index DESC LIMIT {n:UInt32}",
            {"p": pid, "i": last_trigger, "n": policy.cost_tracking_window_size},
        )
        intercept, slope = ridge_line([r[0] for r in rows], [r[1] for r in rows], COST_ALPHA)
        return intercept + slope * samples, f"measured: ridge over {len(rows)} trained triggers"
