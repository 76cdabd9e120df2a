"""Evaluation windows in event time, [start, end) in epoch ms, from Modyn's eval strategies.

>>> slicing = SlicingEvalStrategy(type="SlicingEvalStrategy", eval_every="1d", eval_start_from=0, eval_end_at=172800)
>>> static_windows(slicing)
[(0, 86400000), (86400000, 172800000)]
>>> between_triggers([100, 250], first=0, last=300)
[(0, 100), (100, 250), (250, 301)]
"""

from __future__ import annotations

from itertools import pairwise

from modyn_stream.pipeline.schema.evaluation import (
    BetweenTwoTriggersEvalStrategy,
    PeriodicEvalStrategy,
    SlicingEvalStrategy,
    StaticEvalStrategy,
)
from modyn_stream.timeutil import EARLIEST_MS, LATEST_MS, parse_duration, parse_interval, parse_offset, parse_time

Window = tuple[int, int]


def static_windows(strategy) -> list[Window]:
    """Windows that do not depend on triggers (every strategy but BetweenTwoTriggers)."""
    if isinstance(strategy, SlicingEvalStrategy):
        start, end, every = (
            parse_time(strategy.eval_start_from),
            parse_time(strategy.eval_end_at),
            parse_duration(strategy.eval_every),
        )
        return [(t, min(t + every, end)) for t in range(start, end, every)]
    if isinstance(strategy, PeriodicEvalStrategy):
        left, right = parse_interval(strategy.interval)
        start, end = parse_time(strategy.start_timestamp), parse_time(strategy.end_timestamp)
        return [
            (EARLIEST_MS if left is None else t + left, LATEST_MS if right is None else t + right)
            for t in range(start, end + 1, parse_duration(strategy.every))
        ]
    if isinstance(strategy, StaticEvalStrategy):  # an open end (None) runs to the end of the data
        return [(parse_time(a), LATEST_MS if b is None else parse_time(b)) for a, b in strategy.intervals]
    raise TypeError(f"{type(strategy).__name__} needs the triggers: use between_triggers")


def between_triggers(boundaries: list[int], *, first: int, last: int) -> list[Window]:
    """BetweenTwoTriggersEvalStrategy: the data before the first trigger, between triggers, and after the last."""
    edges = [first, *boundaries, last + 1]
    return [(a, b) for a, b in pairwise(edges) if b > a]


def windows_for(strategy, boundaries: list[int], first: int, last: int) -> list[Window]:
    if isinstance(strategy, BetweenTwoTriggersEvalStrategy):
        return between_triggers(boundaries, first=first, last=last)
    return static_windows(strategy)


def offset_windows(offsets: list[str], start: int, end: int) -> list[Window]:
    """OffsetEvalStrategy: windows around a model's training interval [start, end] (ms, both inclusive), as
    Modyn's: '-inf' all before it, 'inf' all after it, '-d' the d before it, '+d' the d after it, '0' itself.

    >>> offset_windows(["-inf", "-1s", "0s", "+2s", "inf"], 10_000, 20_000)[1:4]
    [(9000, 10000), (10000, 20001), (20001, 22001)]
    """
    windows = []
    for offset in offsets:
        if offset == "-inf":
            windows.append((EARLIEST_MS, start))
        elif offset in ("inf", "+inf"):
            windows.append((end + 1, LATEST_MS))
        else:
            length = parse_offset(offset)
            if length < 0:
                windows.append((start + length, start))
            elif length > 0:
                windows.append((end + 1, end + 1 + length))
            else:
                windows.append((start, end + 1))
    return windows
