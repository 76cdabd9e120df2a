"""Pipeline YAML validation: every problem at once, with its YAML path and a plain reason."""

from pathlib import Path

import pytest
import yaml

from modyn_stream.pipeline.loading import PipelineConfigError, load_pipeline, pipeline_id, validate_data, validate_text
from modyn_stream.pipeline.schema.triggers import (
    AvoidableMisclassificationCostTrigger,
    DataAmountTrigger,
    DataDriftTrigger,
    EnsembleTrigger,
    PerformanceTrigger,
    TimeTrigger,
)

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits_data_amount.yaml"  # the main job's: the base
BASE = yaml.safe_load(DIGITS.read_text())


def with_changes(**sections) -> dict:
    return {**BASE, **sections}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_pipeline_is_valid(path):
    config = load_pipeline(path)
    assert config.pipeline.name and config.training.batch_size > 0


def test_the_examples_cover_the_issue_triggers():
    triggers = {type(load_pipeline(p).trigger) for p in EXAMPLES}
    assert triggers == {
        DataAmountTrigger, TimeTrigger, EnsembleTrigger, DataDriftTrigger, PerformanceTrigger,
        AvoidableMisclassificationCostTrigger,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"trigger": {"id": "DataAmountTriger", "num_samples": 5}},
         "trigger.id: unknown 'DataAmountTriger' (did you mean 'DataAmountTrigger'?)"),
        ({"trigger": {"id": "DataAmountTrigger", "num_samples": -5}},
         "trigger.num_samples: Input should be greater than or equal to 1, got -5"),
        ({"trigger": {"id": "TimeTrigger", "every": "3 fortnights"}},
         "trigger.every: invalid duration '3 fortnights'"),
        ({"trigger": {"id": "EnsembleTrigger", "subtriggers": {"a": {"id": "DataAmountTrigger", "num_samples": 3}},
                      "ensemble_strategy": {"id": "AtLeastN", "n": 2}}},
         "trigger: AtLeastN n=2 exceeds the 1 subtriggers"),
        ({"selection_strategy": {"name": "NewDataStrategy", "tail_trigers": 1}},
         "selection_strategy.tail_trigers: unknown field (did you mean 'tail_triggers'?)"),
        ({"selection_strategy": {"name": "FreshnessSamplingStrategy", "unused_data_ratio": 150}},
         "selection_strategy.unused_data_ratio: Input should be less than or equal to 99, got 150"),
        ({"selection_strategy": {"name": "FreshnessSamplingStrategy", "unused_data_ratio": 0.5}},
         "selection_strategy.unused_data_ratio: Input should be a valid integer"),
        ({"selection_strategy": {"name": "CoresetStrategy",
                                 "downsampling_config": {"strategy": "RHOLoss", "ratio": 50}}},
         "selection_strategy.downsampling_config: RHOLoss downsampling needs holdout_set_strategy, holdout_set_ratio, "
         "il_training_config"),
        ({"selection_strategy": {"name": "CoresetStrategy", "presampling_config": {"strategy": "Random", "ratio": 60,
                                                                                   "ratio_max": 50}}},
         "selection_strategy.presampling_config: ratio 60 exceeds ratio_max 50"),
        ({"data": {"dataset_id": "d", "bytes_parser_function": "def f(x): return x"}},
         "data.bytes_parser_function: not one of Modyn's standard snippets (it is never run here): needs one function "
         "bytes_parser_function(x)"),
        ({"data": {"dataset_id": "d", "decoder": "mymodule:decode"}},
         "data.decoder: 'mymodule:decode' imports code from module 'mymodule', which this process does not trust"),
        ({"model": {"id": "os:system", "trusted": True, "config": {}}},
         "model.trusted: a pipeline file cannot trust its own code: the operator allows it with --trust-code"),
        ({"data": {"dataset_id": "d", "trusted": True}}, "data.trusted: a pipeline file cannot trust its own code"),
        ({"data": {"dataset_id": "has space"}}, "data.dataset_id: dataset_id may only contain"),
        ({"model": {"id": "SmallCN", "config": {"num_classes": 3}}},
         "model.id: unknown model 'SmallCN' (did you mean 'SmallCNN'?)"),
        ({"model": {"id": "MLP", "config": {"input_dim": 8, "num_classes": 2}}},
         "model.config.input_dim: not a parameter of MLP (it takes in_features, num_classes, hidden, dropout)"),
        ({"model": {"id": "SmallCNN", "config": {"num_class": 3}}},
         "model.config.num_class: not a parameter of SmallCNN (did you mean 'num_classes'?)"),
        ({"model": {"id": "SmallCNN", "config": {}}}, "model.config.num_classes: required by SmallCNN"),
    ],
)  # fmt: skip
def test_each_problem_is_named_by_its_path(change, problem):
    _, problems = validate_data(with_changes(**change))
    assert any(p.startswith(problem) for p in problems), problems


def test_training_cross_checks():
    training = {**BASE["training"], "lr_scheduler": {"name": "StepLR", "optimizers": ["adam"]}}
    _, problems = validate_data(with_changes(training=training))
    assert problems == ["training: lr_scheduler refers to unknown optimizer(s) ['adam']; defined: ['default']"]
    training = {**BASE["training"], "device": "gpu", "initial_model": "pretrained"}
    _, problems = validate_data(with_changes(training=training))
    assert problems == ["training.device: device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"]


def test_all_problems_are_reported_together():
    broken = with_changes(
        trigger={"id": "DataAmountTrigger", "num_sample": 10},
        training={**BASE["training"], "epochz": 2, "batch_size": 0},
    )
    _, problems = validate_data(broken)
    assert problems == [
        "training.batch_size: Input should be greater than or equal to 1, got 0",
        "training.epochz: unknown field (did you mean 'epochs_per_trigger'?)",
        "trigger.num_samples: field required",
        "trigger.num_sample: unknown field (did you mean 'num_samples'?)",
    ]


def test_broken_yaml_and_files_give_one_clear_problem(tmp_path):
    assert validate_text("trigger: [1,\n  2") == [
        "line 2, column 4: not valid YAML: expected ',' or ']', but got '<stream end>'"
    ]
    assert validate_text("- a list") == ["(top level): a pipeline must be a mapping of sections, got list"]
    with pytest.raises(PipelineConfigError, match=r"missing.yaml: 1 problem\(s\): cannot read: No such file"):
        load_pipeline(tmp_path / "missing.yaml")


def test_pipeline_id_depends_on_the_config_only():
    a, b = validate_data(BASE)[0], validate_data(yaml.safe_load(DIGITS.read_text()))[0]
    assert pipeline_id(a) == pipeline_id(b)
    changed = validate_data(with_changes(trigger={"id": "DataAmountTrigger", "num_samples": 7}))[0]
    assert pipeline_id(changed)[0] != pipeline_id(a)[0] and pipeline_id(a)[0].startswith("digits-data-amount-")


def test_time_trigger_parses_its_units():
    trigger = TimeTrigger(id="TimeTrigger", every="3d", start_timestamp="2024-01-01")
    assert trigger.every_ms == 3 * 86_400_000 and trigger.start_ms == 1_704_067_200_000


@pytest.mark.parametrize("name", ["../victim", "/etc", "runs/../../x", "..", ".", "tab\there", "x" * 129])
def test_a_pipeline_name_that_is_not_one_safe_directory_name_is_refused_in_one_line(name):
    problems = validate_data(with_changes(pipeline={"name": name}))[1]
    assert len(problems) == 1 and problems[0].startswith("pipeline.name: ") and "not a safe name" in problems[0]


def test_modyn_pipeline_names_with_spaces_and_punctuation_are_kept():
    name = "FunctionalMapoftheWorld (fmow) Test Pipeline"
    config, problems = validate_data(with_changes(pipeline={"name": name}))
    assert problems == [] and config.pipeline.name == name


def test_a_key_given_twice_is_refused_with_both_lines():
    text = DIGITS.read_text() + "trigger: {id: DataAmountTrigger, num_samples: 5}\n"
    (problem,) = validate_text(text)
    assert "not valid YAML: duplicate key 'trigger' (first at line" in problem and problem.startswith("line ")


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(DIGITS.read_bytes() + "# caf\xe9\n".encode("latin-1"))
    with pytest.raises(PipelineConfigError) as raised:
        load_pipeline(path)
    (problem,) = raised.value.problems
    assert problem.startswith("line ") and "not UTF-8 text" in problem


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["training"]["optimizers"][0]["param_groups"][0]["config"].update(lr=-0.1),
         "training.optimizers[0].param_groups[0].config: SGD refuses it: Invalid learning rate: -0.1"),
        (lambda c: c["training"]["optimizers"][0]["param_groups"][0]["config"].update(lr=float("nan")),
         "training.optimizers[0].param_groups[0].config.lr: NaN is not a number a pipeline can use"),
        (lambda c: c["trigger"].update(num_samples=2**64), "trigger.num_samples: 18446744073709551616 does not fit"),
        (lambda c: c["data"]["decoder_config"].update(shape=[28, 28]),
         "data.decoder_config.shape: [28, 28] of uint8 takes 784 bytes a sample, but the replayed payloads have 64"),
        (lambda c: c["data"]["decoder_config"].update(shape=[1, float("inf")]),
         "data.decoder_config: cannot convert float infinity to integer"),
        (lambda c: c["replay"].update(seed=-1), "replay.seed: Input should be greater than or equal to 0"),
    ],
)  # fmt: skip
def test_values_the_trainer_could_not_use_are_refused_by_validate(change, problem):
    config = yaml.safe_load(DIGITS.read_text())
    change(config)
    problems = validate_data(config)[1]
    assert len(problems) == 1 and problems[0].startswith(problem), problems


def _nodes(node, path=()):
    yield path
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        yield from _nodes(child, (*path, key))


def test_a_broken_config_anywhere_gives_problem_lines_never_an_exception():
    # Each case puts a value of another kind (None, huge, NaN, a list, a mapping, a path, ...) at 1-3 places.
    import copy
    import random

    values = [None, 0, -1, 2**70, 1.5, float("nan"), float("inf"), "", "x", [], [1], [[1]], {}, {"a": 1}, True,
              "cuda:3", "../x", [None], {"id": "DataAmountTrigger"}]  # fmt: skip
    places = [p for p in _nodes(BASE) if p]
    rng = random.Random(0)
    for _ in range(400):
        config = copy.deepcopy(BASE)
        for _ in range(rng.randint(1, 3)):
            *parents, last = rng.choice(places)
            node = config
            try:
                for key in parents:
                    node = node[key]
                node[last] = rng.choice(values)
            except (KeyError, IndexError, TypeError):
                continue  # a place an earlier change removed
        _, problems = validate_data(config)
        assert all(isinstance(p, str) and p and "\n" not in p for p in problems), problems
