"""EnsembleTrigger over a drift trigger and an amount trigger: votes kept until the ensemble fires, the
subtriggers moved on by its triggers only, and a custom vote that runs only where the operator trusts it."""

import pytest
import yaml

from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.trust import NOBODY, CodeTrust, UntrustedCodeError
from modyn_stream.triggers.batched import WAITING
from modyn_stream.triggers.drift.trigger import DriftDetector
from modyn_stream.triggers.ensemble import EnsembleJudge
from tests.pipeline.test_config import DIGITS
from tests.triggers.decisions import decide_all
from tests.triggers.drift.test_trigger import SHIFT, Index, Vectors, config_with

DRIFT = {"id": "DataDriftTrigger", "evaluation_interval_data_points": 100, "features": "raw",
         "windowing_strategy": {"id": "AmountWindowingStrategy", "amount_ref": 100, "amount_cur": 100},
         "metrics": {"shift": SHIFT}}  # fmt: skip
VALUES = [0.0] * 600 + [10.0] * 600  # the stream shifts at sample 601


def drift_alone(votes: dict[str, bool]) -> bool:
    """A custom vote: the drift subtrigger decides alone."""
    return votes["drift"]


def ensemble(strategy: dict) -> dict:
    return {"id": "EnsembleTrigger", "ensemble_strategy": strategy,
            "subtriggers": {"drift": DRIFT, "amount": {"id": "DataAmountTrigger", "num_samples": 400}}}  # fmt: skip


def run(config, trust=NOBODY, models=(0, 1, 2, 3, 4, 5)):
    vectors = Vectors(VALUES, models=models)
    return decide_all(EnsembleJudge(lambda policy: DriftDetector(vectors), trust), config, Index(len(VALUES)))


@pytest.mark.parametrize("strategy", [{"id": "AtLeastN", "n": 2}, {"id": "MajorityVote"}])
def test_both_must_have_fired_since_the_last_trigger(strategy):
    decisions, _ = run(config_with(ensemble(strategy)))
    fired = [d.point.event_time for d in decisions if d.fired]
    assert fired == [400, 800], "drift (first) and amount at 400; drift at 700 (the shift), amount at 800"
    at_700 = next(d for d in decisions if d.point.event_time == 700)
    assert not at_700.fired and at_700.state.votes == ["drift"], "a vote is kept until the ensemble fires"
    assert decisions[-1].state.subs["drift"].reset.event_time == 800, "the drift windows move on at its triggers"


def test_a_custom_vote_runs_only_where_the_operator_trusts_it():
    custom = ensemble({"id": "Custom", "aggregation_function": f"{__name__}:drift_alone"})
    data = yaml.safe_load(DIGITS.read_text()) | {"trigger": custom}
    trusted = CodeTrust(modules=(__name__,))
    config, problems = validate_data(data, trusted)
    assert not problems, problems
    decisions, _ = run(config, trusted)
    assert [d.point.event_time for d in decisions if d.fired] == [100, 700], "drift alone decides"
    with pytest.raises(UntrustedCodeError, match="does not trust"):
        run(config)
    problems = validate_data(data)[1]
    assert len(problems) == 1 and problems[0].startswith("trigger.ensemble_strategy.aggregation_function: ")


def test_a_subtrigger_on_embeddings_waits_for_the_ensemble_s_model():
    on_embeddings = ensemble({"id": "AtLeastN", "n": 2})
    on_embeddings["subtriggers"]["drift"] = DRIFT | {"features": "embeddings"}
    config = config_with(on_embeddings)
    decisions, waiting = run(config, models=())
    assert [d.fired for d in decisions].count(True) == 1 and waiting is WAITING
