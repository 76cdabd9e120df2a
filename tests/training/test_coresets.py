"""Coreset downsampling against direct computations of each definition on small fixed inputs."""

import math

import numpy as np
import pytest
import torch

from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
from modyn_stream.pipeline.schema.training import TrainingSection
from modyn_stream.training.coresets import (
    SUBMODULAR_FUNCTIONS,
    cosine_similarity,
    craig,
    grad_match,
    greedy,
    k_center_greedy,
    last_layer_gradients,
    output_gradients,
)
from modyn_stream.training.loop import train
from modyn_stream.training.models import build_model
from tests.pipeline.test_modyn_compat import modyn_format

ROWS = torch.randn(24, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def value(function: str, s: np.ndarray, chosen: list[int]) -> float:
    """The submodular function's value by its definition."""
    if not chosen:
        return 0.0
    if function == "FacilityLocation":
        return float(s[:, chosen].max(axis=1).sum())
    if function == "GraphCut":
        return float(s[:, chosen].sum() - s[np.ix_(chosen, chosen)].sum())
    return float(np.linalg.slogdet(s[np.ix_(chosen, chosen)])[1])


def reference_greedy(function: str, s: np.ndarray, k: int) -> list[int]:
    chosen: list[int] = []
    for _ in range(k):
        free = [c for c in range(len(s)) if c not in chosen]
        chosen.append(max(free, key=lambda c: value(function, s, [*chosen, c])))
    return chosen


@pytest.mark.parametrize("function", sorted(SUBMODULAR_FUNCTIONS))
def test_gains_are_the_increase_of_the_function_s_value(function):
    s = cosine_similarity(ROWS)
    state = SUBMODULAR_FUNCTIONS[function](s, 7)
    chosen: list[int] = []
    for pick in (3, 17, 8, 0):
        free = torch.tensor([c for c in range(len(s)) if c not in chosen])
        expected = [value(function, s.numpy(), [*chosen, int(c)]) - value(function, s.numpy(), chosen) for c in free]
        assert np.allclose(state.gains(free).numpy(), expected, atol=1e-9)
        state.add(pick)
        chosen.append(pick)


@pytest.mark.parametrize("function", sorted(SUBMODULAR_FUNCTIONS))
def test_naive_and_lazy_greedy_pick_what_the_direct_greedy_picks(function):
    s = cosine_similarity(ROWS)
    expected = reference_greedy(function, s.numpy(), 6)
    for optimizer in ("NaiveGreedy", "LazyGreedy"):
        for rows in (1, 5, 100):  # selection_batch: memory, never the picks
            state = SUBMODULAR_FUNCTIONS[function](s, rows)
            assert greedy(state, len(s), 6, optimizer, torch.Generator()) == expected, (optimizer, rows)


def test_approximate_lazy_greedy_takes_a_pick_within_its_tolerance_of_the_best():
    s = cosine_similarity(ROWS).numpy()
    picks = greedy(SUBMODULAR_FUNCTIONS["FacilityLocation"](torch.from_numpy(s), 64), len(s), 8,
                   "ApproximateLazyGreedy", torch.Generator())  # fmt: skip
    assert len(set(picks)) == 8
    for step, pick in enumerate(picks):
        before = picks[:step]
        gains = [value("FacilityLocation", s, [*before, c]) - value("FacilityLocation", s, before)
                 for c in range(len(s)) if c not in before]  # fmt: skip
        mine = value("FacilityLocation", s, [*before, pick]) - value("FacilityLocation", s, before)
        assert mine >= 0.9 * max(gains) - 1e-9


def test_stochastic_greedy_is_the_best_of_a_seeded_sample_each_step():
    rows = torch.randn(200, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s = cosine_similarity(rows)

    def run(seed):
        state = SUBMODULAR_FUNCTIONS["FacilityLocation"](s, 64)
        return greedy(state, 200, 5, "StochasticGreedy", torch.Generator().manual_seed(seed))

    assert run(0) == run(0) and len(set(run(0))) == 5
    assert run(0) != run(1)
    naive = greedy(SUBMODULAR_FUNCTIONS["FacilityLocation"](s, 64), 200, 5, "NaiveGreedy", torch.Generator())
    assert value("FacilityLocation", s.numpy(), run(0)) <= value("FacilityLocation", s.numpy(), naive) + 1e-9


def test_k_center_greedy_takes_the_farthest_point_from_every_centre_each_time():
    first = int(torch.randint(len(ROWS), (1,), generator=torch.Generator().manual_seed(4)))
    expected = [first]
    points = ROWS.tolist()
    while len(expected) < 9:
        free = [i for i in range(len(points)) if i not in expected]
        expected.append(max(free, key=lambda i: min(math.dist(points[i], points[c]) for c in expected)))
    assert k_center_greedy(ROWS, 9, torch.Generator().manual_seed(4)).tolist() == expected


def test_craig_is_facility_location_within_classes_weighted_by_cluster_sizes():
    labels = torch.tensor([0] * 10 + [1] * 14)
    picks, weights = craig(ROWS, labels, 6, "NaiveGreedy", 64, torch.Generator())
    distances = torch.cdist(ROWS, ROWS).numpy()
    s = np.zeros((24, 24))
    for members in (range(10), range(10, 24)):
        block = distances[np.ix_(members, members)]
        s[np.ix_(members, members)] = block.max() - block + 1e-3
    assert picks.tolist() == reference_greedy("FacilityLocation", s, 6)
    closest = {}
    for i in range(24):  # each sample's nearest pick of its own class
        own = [p for p in picks.tolist() if labels[p] == labels[i]]
        closest[i] = min(own, key=lambda p: distances[i, p])
    assert weights.tolist() == [sum(1 for c in closest.values() if c == p) for p in picks.tolist()]
    assert weights.sum() == 24


def test_grad_match_matches_the_mean_gradient_with_regularised_non_negative_weights():
    rows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # mean (2/3, 2/3): most aligned with the third
    chosen, weights = grad_match(rows, 1)
    assert chosen.tolist() == [2] and weights.tolist() == pytest.approx([(4 / 3) / (2 + 1)])  # r.b / (|r|^2 + 1)
    chosen, weights = grad_match(ROWS, 12)
    assert len(chosen) <= 12 and (weights > 0).all()
    approximation = (weights.double()[:, None] * ROWS[chosen]).sum(0)
    assert torch.linalg.vector_norm(approximation - ROWS.mean(0)) < torch.linalg.vector_norm(ROWS.mean(0))


def test_last_layer_gradients_are_autograd_s_for_the_bias_and_the_weights():
    layer = torch.nn.Linear(3, 4)
    embeddings = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    targets = torch.tensor([0, 3, 1, 1, 2])
    loss = torch.nn.CrossEntropyLoss(reduction="none")
    outputs = layer(embeddings)
    rows = last_layer_gradients(output_gradients(outputs.detach(), targets, loss), embeddings)
    for i in range(5):
        own = loss(outputs[i : i + 1], targets[i : i + 1]).sum()
        bias, weight = torch.autograd.grad(own, [layer.bias, layer.weight], retain_graph=True)
        assert torch.allclose(rows[i], torch.cat([bias, weight.flatten()]), atol=1e-6)
    generic = output_gradients(outputs.detach(), targets, lambda o, t: loss(o, t))  # by autograd, not closed form
    assert torch.allclose(generic, rows[:, :4], atol=1e-6)


CORESETS = [
    {"strategy": "KcenterGreedy"},
    {"strategy": "Craig"},
    {"strategy": "Craig", "greedy": "LazyGreedy", "full_grad_approximation": "LastLayerWithEmbedding"},
    {"strategy": "Submodular", "submodular_function": "FacilityLocation"},
    {"strategy": "Submodular", "submodular_function": "GraphCut", "submodular_optimizer": "LazyGreedy"},
    {"strategy": "Submodular", "submodular_function": "LogDeterminant", "selection_batch": 8},
    {"strategy": "GradMatch"},
]


@pytest.mark.parametrize("sample_then_batch", [False, True])
@pytest.mark.parametrize("strategy", CORESETS, ids=lambda d: "-".join(map(str, d.values())))
def test_coreset_downsampled_training_keeps_a_quarter_and_is_reproducible(strategy, sample_then_batch):
    config = TrainingSection.model_validate({
        "batch_size": 16, "seed": 3, "epochs_per_trigger": 2,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.1}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    downsampling = DownsamplingConfig(ratio=25, sample_then_batch=sample_then_batch, **strategy)
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()

    def run():
        torch.manual_seed(1)
        model = build_model("MLP", {"in_features": 4, "num_classes": 2, "hidden": [8]})
        outcome = train(model, [(x, y, torch.ones(128))], config, trigger_index=0, num_samples=128,
                        device=torch.device("cpu"), downsampling=downsampling)  # fmt: skip
        return model.state_dict(), outcome

    (first, outcome), (second, _) = run(), run()
    if strategy["strategy"] == "GradMatch":  # samples weighted 0 are dropped
        assert 0 < outcome.samples_passed <= 2 * 32
    else:
        assert outcome.samples_passed == 2 * 32, "a quarter of each epoch"
    assert outcome.downsample_s > 0
    assert all(torch.equal(first[k], second[k]) for k in first), "the same seed, the same selection and weights"


def test_modyn_s_coreset_configs_validate_with_modyn_s_defaults():
    data = modyn_format()
    data["selection_strategy"]["downsampling_config"] = {"strategy": "Craig", "ratio": 50}
    config, problems = validate_data(data)
    assert not problems
    craig_config = config.selection_strategy.downsampling()
    assert (craig_config.greedy, craig_config.selection_batch, craig_config.full_grad_approximation) == \
        ("NaiveGreedy", 64, "LastLayer")  # fmt: skip
    data["selection_strategy"]["downsampling_config"] = {
        "strategy": "Submodular", "ratio": 50, "submodular_function": "GraphCut", "balance": True,
        "sample_then_batch": True,
    }  # fmt: skip
    config, problems = validate_data(data)
    assert not problems and config.selection_strategy.downsampling().submodular_optimizer == "NaiveGreedy"


@pytest.mark.parametrize("strategy", [*CORESETS, {"strategy": "Loss"}, {"strategy": "RS2", "with_replacement": False}],
                         ids=lambda d: "-".join(map(str, d.values())))  # fmt: skip
def test_a_dumped_downsampling_config_validates_again_as_itself(strategy):
    config = DownsamplingConfig(ratio=50, **strategy)
    assert DownsamplingConfig.model_validate(config.model_dump()) == config, "as the runner re-reads a pipeline"


def test_a_selection_batch_log_determinant_never_reads_is_noted():
    from modyn_stream.pipeline.notes import pipeline_notes

    data = modyn_format()
    data["selection_strategy"]["downsampling_config"] = {
        "strategy": "Submodular", "ratio": 50, "submodular_function": "LogDeterminant", "selection_batch": 32,
    }  # fmt: skip
    config, problems = validate_data(data)
    assert not problems
    assert ("selection_strategy.downsampling_config.selection_batch: LogDeterminant's gains sum no similarity rows; "
            "not read") in pipeline_notes(config)  # fmt: skip
