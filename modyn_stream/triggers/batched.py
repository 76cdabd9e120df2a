"""What Modyn's batched triggers (DataDrift, Performance) share: a decision every `evaluation_interval_data_points`
samples in (event_time, key) order, the warmup policy deciding the first `warmup_intervals`, the vote, and the
state carried from one decision to the next (recorded with each, as JSON, so a restart resumes it exactly).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field, replace

from modyn_stream.pipeline.schema.simple_triggers import AtLeastN
from modyn_stream.triggers.policies import START, Boundary, next_firing

WAITING = object()  # a decision that needs a model version not stored yet


@dataclass
class PolicyState:
    evaluations: int = 0
    point: Boundary = START  # the last evaluation point
    reset: Boundary = START  # drift: where the reference window ends and the current one starts
    triggered_once: bool = False
    warmup_done: int = 0
    warmup_last: Boundary = START  # the warmup policy's last firing
    warmup_refs: list[Boundary] = field(default_factory=list)  # drift: reference ends of the warmup intervals
    seen: dict[str, list[float]] = field(default_factory=dict)  # each criterion's last values (dynamic ones)
    counters: dict[str, float] = field(default_factory=dict)  # performance: avoidable misclassifications so far
    expected: list[float] = field(default_factory=list)  # performance: accuracy of the first decision after a trigger
    fresh: bool = False  # performance: the next decision is the first with a new model
    subs: dict[str, PolicyState] = field(default_factory=dict)  # ensemble: each subtrigger's state
    votes: list[str] = field(default_factory=list)  # ensemble: the subtriggers that fired since its last trigger

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PolicyState:
        return cls._from_dict(json.loads(text))

    @classmethod
    def _from_dict(cls, raw: dict) -> PolicyState:
        points = {k: Boundary(**raw.pop(k)) for k in ("point", "reset", "warmup_last")}
        refs = [Boundary(**b) for b in raw.pop("warmup_refs")]
        subs = {name: cls._from_dict(sub) for name, sub in raw.pop("subs", {}).items()}
        return cls(**raw, **points, warmup_refs=refs, subs=subs)

    def advanced(self, point: Boundary) -> PolicyState:
        """A copy for the decision at `point` (lists and maps copied, so the old state stays as it was)."""
        return replace(self, point=point, evaluations=self.evaluations + 1, warmup_refs=list(self.warmup_refs),
                       seen=dict(self.seen), counters=dict(self.counters), expected=list(self.expected),
                       subs=dict(self.subs), votes=list(self.votes))  # fmt: skip

    def triggered(self, point: Boundary) -> None:
        """A trigger at `point` (a new model comes): drift windows move on, regret and misclassification counts
        restart, and the next score is the new model's first."""
        self.reset, self.counters, self.fresh = point, {}, True


@dataclass(frozen=True)
class Outcome:
    """One metric's or criterion's part of a decision."""

    value: float
    fired: bool
    threshold: float | None = None
    test_drift: bool | None = None
    test_p_val: float | None = None
    test_threshold: float | None = None


@dataclass(frozen=True)
class Decision:
    point: Boundary
    phase: str  # first | warmup | detection
    fired: bool
    reason: str
    state: PolicyState
    model_index: int | None = None
    reference_samples: int = 0
    current_samples: int = 0
    results: dict[str, Outcome] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # keys of window samples the decoder could not read, left out


def unreadable(rows, kept) -> tuple[str, ...]:
    """The keys of the window `rows` that `kept` (from WindowData) leaves out."""
    return tuple(key for key, ok in zip(rows["key"].to_pylist(), kept, strict=True) if not ok)


def merged(known: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    """Unreadable keys of several windows, each once (overlapping windows read the same sample).

    >>> merged(("a",), ("b", "a", "b"))
    ('a', 'b')
    """
    return known + tuple(key for key in dict.fromkeys(more) if key not in known)


def with_trigger(decision):
    """A decision with what its trigger does to the policy's state applied, if it fired."""
    if decision is not WAITING and decision is not None and decision.fired:
        decision.state.triggered(decision.point)
    return decision


def next_point(data, pid: str, config, index, state: PolicyState, last_trigger: int | None, needs_model=True):
    """The point of the next decision; None: not due yet; WAITING: due, but (`needs_model`) the model of the last
    trigger is not stored yet (before the first decision there is none to wait for)."""
    point = index.nth_after(state.point, config.trigger.evaluation_interval_data_points)
    if point is not None and needs_model and state.triggered_once and data.model(pid, config, last_trigger) is None:
        return WAITING
    return point


def warmup_count(policy) -> int:
    """Modyn's rule: without a warmup policy there is no warmup."""
    return (policy.warmup_intervals or 0) if policy.warmup_policy is not None else 0


def in_warmup(policy, state: PolicyState) -> bool:
    """Whether the warmup policy decides at the next point (the first decision always goes to it)."""
    return not state.triggered_once or state.warmup_done < warmup_count(policy)


def warmup_decides(policy, index, state: PolicyState, after: PolicyState, point: Boundary) -> bool:
    """The warmup's decision at `point`, counted in `after`: the first decision always fires, the others fire
    where the warmup policy fires in the interval."""
    fired = True
    if state.warmup_done < warmup_count(policy):
        after.warmup_done += 1
        fired, last = False, state.warmup_last
        while (firing := next_firing(policy.warmup_policy, index, last, 0)) is not None and firing.boundary <= point:
            fired, last = True, firing.boundary
        after.warmup_last = last
    after.triggered_once = True
    return fired or not state.triggered_once


def voted(strategy, outcomes: dict[str, Outcome]) -> tuple[bool, int]:
    """(whether the vote fires, its yes votes): MajorityVote needs more than half, AtLeastN n."""
    votes = sum(o.fired for o in outcomes.values())
    needed = strategy.n if isinstance(strategy, AtLeastN) else len(outcomes) // 2 + 1
    return votes >= needed, votes


def summary(outcomes: dict[str, Outcome]) -> str:
    return "; ".join(
        f"{name} {o.value:.6g}" + (f" vs {o.threshold:.6g}" if o.threshold is not None else "") + (" fired" * o.fired)
        for name, o in outcomes.items()
    )


def seed_of(config, name: str, point: Boundary) -> int:
    return zlib.crc32(f"{config.training.seed}/{name}/{point.event_time}/{point.key}".encode())
