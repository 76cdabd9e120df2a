"""EnsembleTrigger over any subtriggers (drift, performance, cost, amount, time), as Modyn's EnsembleTrigger.

Each subtrigger decides at its own points: a batched one every `evaluation_interval_data_points` samples (its
decision, with its state, kept in the ensemble's), an amount or time one where it fires counting from its last
firing (the ensemble's last trigger at first). The ensemble steps through those points in (event_time, key)
order; a subtrigger that fired since the ensemble's last trigger keeps its vote, and at each point the vote
(MajorityVote, AtLeastN, or a trusted `module:function` of {subtrigger: voted}) decides. When the ensemble
fires, every subtrigger sees the trigger (windows move on, counts restart) and the votes are cleared. Simple
ensembles with a majority or AtLeastN vote are decided in one step instead (policies.py).
"""

from __future__ import annotations

from dataclasses import replace

from modyn_stream.pipeline.config import PipelineConfig
from modyn_stream.pipeline.schema.drift import BatchedTrigger
from modyn_stream.pipeline.schema.triggers import AtLeastN, CustomVote, EnsembleTrigger
from modyn_stream.pipeline.trust import CodeTrust
from modyn_stream.triggers.batched import WAITING, Decision, Outcome, PolicyState, merged
from modyn_stream.triggers.policies import next_firing


class EnsembleJudge:
    def __init__(self, judge_of, trust: CodeTrust) -> None:
        self.judge_of = judge_of  # a subtrigger's policy -> the object deciding it
        self.trust = trust
        self._configs: dict[tuple[str, str], PipelineConfig] = {}

    def evaluate(self, pid: str, config: PipelineConfig, index, state: PolicyState, last_trigger: int | None):
        """The ensemble's next step; None: no subtrigger has a point yet; WAITING: one waits for a model."""
        policy: EnsembleTrigger = config.trigger
        points = {name: self._next_point(sub, index, state, name) for name, sub in policy.subtriggers.items()}
        known = [p for p in points.values() if p is not None]
        if not known:
            return None
        point = min(known)
        after = state.advanced(point)
        outcomes, skipped = {}, ()
        for name, sub in sorted(policy.subtriggers.items()):
            if points[name] != point:
                continue
            sub_state = state.subs.get(name, PolicyState(point=state.reset))
            if isinstance(sub, BatchedTrigger):
                if last_trigger is None:  # no model yet: each decision is a first one, which fires
                    sub_state = replace(sub_state, triggered_once=False)
                judge = self.judge_of(sub)
                decision = judge.evaluate(pid, self._config(pid, config, name), index, sub_state, last_trigger)
                if decision is WAITING or decision is None:
                    return WAITING if decision is WAITING else None
                after.subs[name], fired = decision.state, decision.fired
                skipped = merged(skipped, decision.skipped)
            else:
                after.subs[name], fired = PolicyState(point=point), True
            outcomes[name] = Outcome(1.0 if fired else 0.0, fired)
            if fired and name not in after.votes:
                after.votes = sorted([*after.votes, name])
        fired = self._vote(policy, after.votes)
        voters = ", ".join(after.votes) or "none"
        reason = f"EnsembleTrigger({policy.ensemble_strategy.id}): {voters}"
        if fired:
            after.votes = []
            after.reset = point
            for name, sub in policy.subtriggers.items():
                if isinstance(sub, BatchedTrigger):
                    after.subs.setdefault(name, PolicyState(point=state.reset)).triggered(point)
                else:
                    after.subs[name] = PolicyState(point=point)
        return Decision(point, "ensemble", fired, reason, after, last_trigger, results=outcomes, skipped=skipped)

    def _next_point(self, sub, index, state: PolicyState, name: str):
        sub_state = state.subs.get(name, PolicyState(point=state.reset))
        if isinstance(sub, BatchedTrigger):
            return index.nth_after(sub_state.point, sub.evaluation_interval_data_points)
        firing = next_firing(sub, index, sub_state.point, 0)
        return None if firing is None else firing.boundary

    def _vote(self, policy: EnsembleTrigger, votes: list[str]) -> bool:
        strategy = policy.ensemble_strategy
        if isinstance(strategy, CustomVote):
            aggregate = self.trust.load(strategy.aggregation_function, "trigger.ensemble_strategy.aggregation_function")
            return bool(aggregate({name: name in votes for name in policy.subtriggers}))
        needed = strategy.n if isinstance(strategy, AtLeastN) else len(policy.subtriggers) // 2 + 1
        return len(votes) >= needed

    def _config(self, pid: str, config: PipelineConfig, name: str) -> PipelineConfig:
        """The pipeline as the subtrigger's judge reads it: with the subtrigger as its trigger."""
        key = (pid, name)
        if key not in self._configs:
            self._configs[key] = config.model_copy(update={"trigger": config.trigger.subtriggers[name]})
        return self._configs[key]
