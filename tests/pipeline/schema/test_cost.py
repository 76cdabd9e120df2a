"""The cost triggers' schema: Modyn's fields, the cost model, and what cannot be honoured in one line."""

import pytest

from tests.pipeline.schema.test_drift import with_trigger
from tests.pipeline.schema.test_performance import EVALUATION

WARMUP = {"warmup_intervals": 1, "warmup_policy": {"id": "DataAmountTrigger", "num_samples": 100}}
LATENCY = {"id": "DataIncorporationLatencyCostTrigger", "incorporation_delay_per_training_second": 1.0}
MISSES = {"id": "AvoidableMisclassificationCostTrigger", "evaluation": EVALUATION,
          "avoidable_misclassification_latency_per_training_second": 1.0, **WARMUP}  # fmt: skip


def test_modyn_s_cost_triggers_validate_with_the_measured_cost_model_by_default():
    for trigger in (LATENCY, MISSES):
        config, problems = with_trigger(trigger)
        assert not problems, problems
        assert config.trigger.cost_model == "measured" and config.trigger.cost_tracking_window_size == 1000
    config = with_trigger({**LATENCY, "cost_model": "linear", "seconds_per_sample": 0.01})[0]
    assert (config.trigger.seconds_per_sample, config.trigger.seconds_per_trigger) == (0.01, 0.0)


@pytest.mark.parametrize(
    ("trigger", "problem"),
    [
        ({**LATENCY, "cost_model": "linear"}, "cost_model linear needs seconds_per_sample"),
        ({**LATENCY, "seconds_per_sample": 0.1}, "are read with cost_model: linear only"),
        ({**MISSES, "warmup_policy": None}, "a warmup_policy is required for cost triggers"),
        ({**MISSES, "mode": "lookahead"}, "only hindsight mode is supported"),
        ({**LATENCY, "incorporation_delay_per_training_second": None}, "Input should be a valid number"),
    ],
)
def test_what_cannot_be_honoured_is_one_line(trigger, problem):
    problems = with_trigger(trigger)[1]
    assert len(problems) == 1 and problem in problems[0], problems
