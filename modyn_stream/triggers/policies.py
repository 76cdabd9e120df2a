"""Trigger policies as pure decisions over an ordered view of the samples.

A policy answers one question: given the boundary of the last trigger (the last sample it
included, in (event_time, key) order) and how many late samples arrived since, where does the
next trigger fire, if anywhere yet? The view (`SampleIndex`) only exposes samples known to be
complete, so the answer does not depend on timing, partitions or consumers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from modyn_stream.pipeline.schema.triggers import AtLeastN, DataAmountTrigger, EnsembleTrigger, TimeTrigger


@dataclass(frozen=True, order=True)
class Boundary:
    event_time: int
    key: str


START = Boundary(-(2**62), "")  # before every sample


class SampleIndex(Protocol):
    """Samples known to be complete (below the watermark), in (event_time, key) order."""

    def nth_after(self, after: Boundary, n: int) -> Boundary | None:
        """The n-th sample (n >= 1) after `after`, or None if there are fewer."""

    def last_before(self, after: Boundary, event_time: int) -> Boundary | None:
        """The last sample after `after` with an event time below `event_time`, or None."""

    def complete_before(self, event_time: int) -> bool:
        """Whether every sample with an event time below `event_time` is known."""


@dataclass(frozen=True)
class Firing:
    boundary: Boundary
    reason: str


def next_firing(policy, index: SampleIndex, last: Boundary, late: int) -> Firing | None:
    if isinstance(policy, DataAmountTrigger):
        return _data_amount(policy, index, last, late)
    if isinstance(policy, TimeTrigger):
        return _time(policy, index, last)
    if isinstance(policy, EnsembleTrigger):
        return _ensemble(policy, index, last, late)
    raise TypeError(f"no trigger policy for {type(policy).__name__}")


def _data_amount(policy: DataAmountTrigger, index: SampleIndex, last: Boundary, late: int) -> Firing | None:
    """Fire when `num_samples` samples are new since the last trigger; late samples count too."""
    needed = policy.num_samples - late
    reason = f"DataAmountTrigger(num_samples={policy.num_samples})"
    if needed <= 0:
        return Firing(last, reason + f": {late} late samples")
    boundary = index.nth_after(last, needed)
    return Firing(boundary, reason) if boundary is not None else None


def _time(policy: TimeTrigger, index: SampleIndex, last: Boundary) -> Firing | None:
    """Fire at the end of each `every`-long event-time period that holds new samples.

    Periods are aligned to `start_timestamp`, or to the first sample's event time. A period fires
    once every sample before its end is known; periods without new samples do not fire."""
    first_new = index.nth_after(last, 1)
    if first_new is None:
        return None
    start = policy.start_ms
    if start is None:
        start = index.nth_after(START, 1).event_time
    every = policy.every_ms
    end = start + ((first_new.event_time - start) // every + 1) * every  # end of the period holding it
    if not index.complete_before(end):
        return None
    boundary = index.last_before(last, end)
    return Firing(boundary, f"TimeTrigger(every={policy.every}): period ending {end}")


def _ensemble(policy: EnsembleTrigger, index: SampleIndex, last: Boundary, late: int) -> Firing | None:
    """Fire where enough subtriggers would have fired since the last trigger (AtLeastN, MajorityVote)."""
    strategy = policy.ensemble_strategy
    needed = strategy.n if isinstance(strategy, AtLeastN) else len(policy.subtriggers) // 2 + 1
    firings = sorted(
        (f.boundary, name)
        for name, sub in policy.subtriggers.items()
        if (f := next_firing(sub, index, last, late)) is not None
    )
    if len(firings) < needed:
        return None
    boundary = firings[needed - 1][0]
    voters = sorted(name for b, name in firings if b <= boundary)
    return Firing(boundary, f"EnsembleTrigger({strategy.id}): {', '.join(voters)}")
