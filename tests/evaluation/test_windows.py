"""Evaluation windows from each of Modyn's eval strategies."""

import pytest

from modyn_stream.evaluation.windows import between_triggers, static_windows, windows_for
from modyn_stream.pipeline.schema.evaluation import (
    BetweenTwoTriggersEvalStrategy,
    PeriodicEvalStrategy,
    SlicingEvalStrategy,
    StaticEvalStrategy,
)
from modyn_stream.timeutil import EARLIEST_MS, LATEST_MS

DAY = 86_400_000


def test_slicing_cuts_the_range_into_consecutive_windows_the_last_one_clipped():
    strategy = SlicingEvalStrategy(type="SlicingEvalStrategy", eval_every="2d", eval_start_from="2024-01-01",
                                   eval_end_at="2024-01-06")  # fmt: skip
    start = 1_704_067_200_000
    assert static_windows(strategy) == [(start, start + 2 * DAY), (start + 2 * DAY, start + 4 * DAY),
                                        (start + 4 * DAY, start + 5 * DAY)]  # fmt: skip


def test_periodic_windows_surround_each_point_by_the_interval():
    strategy = PeriodicEvalStrategy(
        type="PeriodicEvalStrategy", every="1d", interval="[-1d; +2d]", start_timestamp=0, end_timestamp=2 * 86_400
    )  # fmt: skip (seconds, as Modyn)
    # ']' includes the bound, as in Modyn: a sample at exactly +2d is in (the window ends 1 ms later)
    assert static_windows(strategy) == [(-DAY, 2 * DAY + 1), (0, 3 * DAY + 1), (DAY, 4 * DAY + 1)]


@pytest.mark.parametrize(
    ("interval", "window"),
    [("(-1d; +1d)", (-DAY + 1, DAY)), ("[-1d; +0d)", (-DAY, 0)), ("[-inf; +1d)", (EARLIEST_MS, DAY)),
     ("(-1d, +inf]", (-DAY + 1, LATEST_MS))],
)  # fmt: skip
def test_periodic_bounds_follow_modyn_brackets_and_inf(interval, window):
    strategy = PeriodicEvalStrategy(
        type="PeriodicEvalStrategy", every="1d", interval=interval, start_timestamp=0, end_timestamp=0
    )
    assert static_windows(strategy) == [window]


def test_static_intervals_may_be_open_ended():
    strategy = StaticEvalStrategy(type="StaticEvalStrategy", intervals=[(0, None)])
    assert static_windows(strategy) == [(0, LATEST_MS)]


def test_static_windows_are_the_intervals_as_given():
    strategy = StaticEvalStrategy(type="StaticEvalStrategy", intervals=[(0, 10), ("1970-01-02", "1970-01-03")])
    assert static_windows(strategy) == [(0, 10_000), (DAY, 2 * DAY)], "integers are seconds, as in Modyn"


def test_between_two_triggers_windows_cover_the_data_before_between_and_after_the_triggers():
    strategy = BetweenTwoTriggersEvalStrategy(type="BetweenTwoTriggersEvalStrategy")
    assert windows_for(strategy, [100, 250], 0, 300) == [(0, 100), (100, 250), (250, 301)]
    assert between_triggers([300], first=0, last=300) == [(0, 300), (300, 301)], "the last sample is in a window"
    assert between_triggers([0], first=0, last=5) == [(0, 6)], "no empty window before a trigger at the first sample"
    with pytest.raises(TypeError, match="between_triggers"):
        static_windows(strategy)
