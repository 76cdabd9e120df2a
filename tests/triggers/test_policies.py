"""Trigger policies over an in-memory ordered list of samples (the policy logic alone)."""

import bisect

from modyn_stream.pipeline.schema.triggers import DataAmountTrigger, EnsembleTrigger, TimeTrigger
from modyn_stream.triggers.policies import START, Boundary, next_firing


class ListIndex:
    """SampleIndex over a sorted list, with a horizon up to which event time is complete."""

    def __init__(self, samples: list[Boundary], horizon: int) -> None:
        self.samples = sorted(samples)
        self.horizon = horizon

    def nth_after(self, after, n):
        i = bisect.bisect_right(self.samples, after) + n - 1
        return self.samples[i] if i < len(self.samples) else None

    def last_before(self, after, event_time):
        candidates = [s for s in self.samples if s > after and s.event_time < event_time]
        return candidates[-1] if candidates else None

    def complete_before(self, event_time):
        return event_time <= self.horizon


def run(policy, index, late=0):
    firings, last = [], START
    while (f := next_firing(policy, index, last, late)) is not None:
        firings.append(f)
        last, late = f.boundary, 0
    return firings


SAMPLES = [Boundary(t, f"k{t:03d}") for t in range(0, 100, 3)]  # 34 samples at 0, 3, ..., 99


def test_data_amount_fires_every_n_samples_and_keeps_leftovers():
    firings = run(DataAmountTrigger(id="DataAmountTrigger", num_samples=10), ListIndex(SAMPLES, 1000))
    assert [f.boundary for f in firings] == [SAMPLES[9], SAMPLES[19], SAMPLES[29]]


def test_late_samples_count_toward_the_next_trigger():
    policy = DataAmountTrigger(id="DataAmountTrigger", num_samples=10)
    firing = next_firing(policy, ListIndex(SAMPLES, 1000), START, late=4)
    assert firing.boundary == SAMPLES[5]
    assert next_firing(policy, ListIndex(SAMPLES, 1000), SAMPLES[5], late=12).boundary == SAMPLES[5]


def test_time_trigger_fires_per_complete_period_with_data():
    policy = TimeTrigger(id="TimeTrigger", every="20ms", start_timestamp=0)
    firings = run(policy, ListIndex(SAMPLES, horizon=85))
    # Periods [0,20) [20,40) [40,60) [60,80) are complete; [80,100) is not (horizon 85).
    assert [f.boundary.event_time for f in firings] == [18, 39, 57, 78]


def test_time_trigger_skips_empty_periods_and_aligns_to_the_first_sample():
    sparse = [Boundary(t, "k") for t in (5, 7, 61, 62, 200)]
    firings = run(TimeTrigger(id="TimeTrigger", every="10ms"), ListIndex(sparse, horizon=1000))
    # Periods start at the first sample (5): [5,15) [55,65) [195,205); the empty ones do not fire.
    assert [f.boundary.event_time for f in firings] == [7, 62, 200]


def test_ensemble_at_least_n_fires_where_the_nth_subtrigger_would():
    subtriggers = {
        "amount": {"id": "DataAmountTrigger", "num_samples": 5},
        "time": {"id": "TimeTrigger", "every": "40ms", "start_timestamp": 0},
    }
    index = ListIndex(SAMPLES, 1000)
    any_one = EnsembleTrigger(
        id="EnsembleTrigger", subtriggers=subtriggers, ensemble_strategy={"id": "AtLeastN", "n": 1}
    )
    both = EnsembleTrigger(id="EnsembleTrigger", subtriggers=subtriggers, ensemble_strategy={"id": "MajorityVote"})
    assert next_firing(any_one, index, START, 0).boundary == SAMPLES[4]  # amount fires first (t=12)
    firing = next_firing(both, index, START, 0)
    assert firing.boundary == Boundary(39, "k039") and "amount, time" in firing.reason
