"""DataDriftTrigger's schema: Modyn's drift configs validate, and what cannot be honoured is one line."""

import pytest
import yaml

from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.notes import pipeline_notes
from modyn_stream.pipeline.schema.drift import AmountWindowingStrategy, DataDriftTrigger, TimeWindowingStrategy
from tests.pipeline.test_config import DIGITS

MMD = {"id": "AlibiDetectMmdDriftMetric", "decision_criterion": {"id": "ThresholdDecisionCriterion", "threshold": 0.1}}


def with_trigger(trigger: dict):
    data = yaml.safe_load(DIGITS.read_text())
    data["trigger"] = {"id": "DataDriftTrigger", "evaluation_interval_data_points": 100, **trigger}
    return validate_data(data)


def test_modyn_s_defaults_fill_what_a_file_leaves_out():
    config, problems = with_trigger({"metrics": {"mmd": MMD}})
    assert not problems, problems
    trigger = config.trigger
    assert isinstance(trigger, DataDriftTrigger)
    assert trigger.windowing_strategy == AmountWindowingStrategy(amount_ref=1000, amount_cur=1000)
    assert trigger.sample_size == 5000 and trigger.aggregation_strategy.id == "MajorityVote"
    assert trigger.features == "embeddings" and trigger.metrics["mmd"].kernel == "GaussianRBF"


def test_time_windows_and_a_warmup_with_a_dynamic_criterion_validate():
    dynamic = {"id": "AlibiDetectKSDriftMetric", "decision_criterion": {"id": "DynamicQuantileThresholdCriterion"}}
    config, problems = with_trigger({
        "windowing_strategy": {"id": "TimeWindowingStrategy", "limit_ref": "30d", "limit_cur": "7d"},
        "warmup_intervals": 5, "warmup_policy": {"id": "TimeTrigger", "every": "7d"},
        "metrics": {"ks": dynamic},
    })  # fmt: skip
    assert not problems, problems
    assert isinstance(config.trigger.windowing_strategy, TimeWindowingStrategy)


@pytest.mark.parametrize(
    ("trigger", "problem"),
    [
        ({"metrics": {"mmd": {**MMD, "threshold": 0.1, "num_permutations": 10}}},
         "threshold and num_permutations are mutually exclusive"),
        ({"metrics": {"h": {"id": "EvidentlyHellingerDistanceDriftMetric",
                            "decision_criterion": {"id": "HypothesisTestDecisionCriterion"}}}},
         "EvidentlyHellingerDistanceDriftMetric has no test of its own"),
        ({"metrics": {"mmd": {**MMD, "decision_criterion": {"id": "DynamicRollingAverageThresholdCriterion"}}}},
         "a warmup_policy is required"),
        ({"metrics": {"mmd": MMD}, "aggregation_strategy": {"id": "AtLeastN", "n": 2}}, "AtLeastN n=2 exceeds"),
        ({"metrics": {"mmd": {**MMD, "kernel": "Laplacian"}}}, "Input should be 'GaussianRBF'"),
        ({"metrics": {"mmd": {**MMD, "preprocessor": {"tokenizer_model": "bert-base-cased", "max_len": 8}}}},
         "Input should be None"),
        ({"metrics": {"r": {"id": "EvidentlyRatioDriftMetric", "component_stattest": "psi",
                            "decision_criterion": {"id": "ThresholdDecisionCriterion", "threshold": 0.2}}}},
         "Input should be 'wasserstein', 'ks' or 'hellinger'"),
        ({"metrics": {}}, "metrics: Dictionary should have at least 1 item"),
        ({"metrics": {"mmd": MMD}, "windowing_strategy": {"id": "TimeWindowingStrategy", "limit_ref": "0d",
                                                           "limit_cur": "1d"}}, "a window's length must be positive"),
    ],
)  # fmt: skip
def test_what_cannot_be_honoured_is_one_line(trigger, problem):
    problems = with_trigger(trigger)[1]
    assert len(problems) == 1 and problem in problems[0], problems


def test_x_ref_preprocessed_is_noted_as_changing_nothing():
    config, problems = with_trigger({"metrics": {"mmd": {**MMD, "x_ref_preprocessed": True}}})
    assert not problems
    assert any("x_ref_preprocessed: no preprocessor runs here" in note for note in pipeline_notes(config))
