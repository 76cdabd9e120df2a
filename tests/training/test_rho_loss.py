"""RHO-Loss: the holdout draw, the irreducible-loss models and the selection by reducible loss."""

import numpy as np
import pytest
import torch

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
from modyn_stream.pipeline.schema.training import OptimizationCriterion, TrainingSection
from modyn_stream.pipeline.trust import NOBODY
from modyn_stream.training.downsampling import select
from modyn_stream.training.loop import train
from modyn_stream.training.model_store import load_model
from modyn_stream.training.models import build_model
from modyn_stream.training.rho_loss import in_holdout, irreducible_losses
from tests.pipeline.test_modyn_compat import modyn_format
from tests.training.test_downsampling import assert_refused

IL = {
    "il_model_id": "MLP", "il_model_config": {"in_features": 4, "num_classes": 2, "hidden": [8]},
    "batch_size": 16, "epochs_per_trigger": 2,
    "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.5}}]}],
    "optimization_criterion": {"name": "CrossEntropyLoss"},
}  # fmt: skip
CROSS_ENTROPY = OptimizationCriterion(name="CrossEntropyLoss")


def rho(strategy: str = "Simple", ratio: int = 30, **il) -> DownsamplingConfig:
    return DownsamplingConfig(strategy="RHOLoss", ratio=50, holdout_set_strategy=strategy, holdout_set_ratio=ratio,
                              il_training_config={**IL, **il})  # fmt: skip


def data(n: int = 200):
    x = torch.randn(n, 4, generator=torch.Generator().manual_seed(0))
    return [(x, (x[:, 0] > 0).long(), torch.ones(n))], [f"key-{i}" for i in range(n)]


def test_the_holdout_draw_is_a_keyed_hash_of_seed_trigger_and_key():
    keys = [f"k{i}" for i in range(20_000)]
    drawn = in_holdout(keys, 1, 3, 30, 100)
    assert abs(drawn.mean() - 0.3) < 0.015
    assert np.array_equal(in_holdout(keys[::-1], 1, 3, 30, 100), drawn[::-1]), "each key's draw, in any order"
    assert not np.array_equal(in_holdout(keys, 1, 4, 30, 100), drawn), "another trigger, another holdout"
    assert in_holdout(keys, 1, 3, 100, 100).all() and not in_holdout([], 1, 3, 30, 100).size


def irreducible(config, tmp_path, new=None, trigger=0):
    chunks, keys = data()
    new = np.ones(len(keys), bool) if new is None else new
    return irreducible_losses(config, chunks, new, keys, seed=5, trigger_index=trigger, criterion_config=CROSS_ENTROPY,
                              device=torch.device("cpu"), artifacts=ArtifactStore(tmp_path), pipeline_id="p",
                              trust=NOBODY), chunks, keys  # fmt: skip


def direct_losses(uri: str, chunks) -> torch.Tensor:
    model = build_model("MLP", IL["il_model_config"])
    model.load_state_dict(load_model(uri)[0])
    model.eval()
    x, y, _ = chunks[0]
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(x), y, reduction="none")


def test_simple_trains_one_model_on_the_holdout_of_the_new_samples_and_scores_every_sample(tmp_path):
    new = np.arange(200) >= 80  # the trigger's own samples: the last 120 of its set
    result, chunks, keys = irreducible(rho(), tmp_path, new)
    expected = int((in_holdout(keys, 5, 0, 30, 100) & new).sum())
    assert [m["samples"] for m in result.models] == [expected] and 20 < expected < 60
    assert load_model(result.models[0]["uri"], result.models[0]["sha256"])[1]["holdout_samples"] == expected
    assert torch.allclose(result.losses, direct_losses(result.models[0]["uri"], chunks), atol=1e-6)
    assert result.train_s > 0
    again, _, _ = irreducible(rho(), tmp_path / "again", new)
    assert torch.equal(again.losses, result.losses), "the same seed: the same IL model"


def test_twin_scores_each_half_by_the_model_that_did_not_see_it(tmp_path):
    result, chunks, keys = irreducible(rho("Twin", 50), tmp_path)
    first = in_holdout(keys, 5, 0, 50, 100)
    assert [m["samples"] for m in result.models] == [int(first.sum()), int((~first).sum())]
    by_first, by_second = (direct_losses(m["uri"], chunks) for m in result.models)
    assert torch.allclose(result.losses, torch.where(torch.from_numpy(first), by_second, by_first), atol=1e-6)


def test_with_use_previous_model_the_il_model_starts_from_the_previous_trigger_s(tmp_path):
    frozen = {"optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.0}}]}]}
    first, _, _ = irreducible(rho(**frozen, use_previous_model=True), tmp_path, trigger=0)
    second, _, _ = irreducible(rho(**frozen, use_previous_model=True), tmp_path, trigger=1)
    fresh, _, _ = irreducible(rho(**frozen, use_previous_model=False), tmp_path, trigger=2)
    assert torch.equal(second.losses, first.losses), "lr 0: still the first trigger's weights"
    assert not torch.equal(fresh.losses, first.losses), "without it, a new random start"


def test_rho_loss_keeps_the_samples_with_the_highest_loss_above_their_irreducible_loss():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [1.0, 0.0]])
    targets = torch.tensor([1, 1, 0, 1])  # losses: 2.13, 0.13, 0.69, 1.31
    irreducible_loss = torch.tensor([2.0, 0.0, 0.0, 0.0])  # the first is hard but not learnable: 0.13 reducible
    loss = torch.nn.CrossEntropyLoss(reduction="none")
    chosen, weights = select(rho(), torch.nn.Identity(), logits, targets, loss, 2, torch.Generator(), irreducible_loss)
    assert chosen.tolist() == [3, 2] and weights.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("sample_then_batch", [False, True])
def test_rho_downsampled_training_trains_on_the_ratio(sample_then_batch, tmp_path):
    config = TrainingSection.model_validate({**{k: v for k, v in IL.items() if not k.startswith("il_")}, "seed": 1})
    result, chunks, _ = irreducible(rho(), tmp_path)
    downsampling = rho().model_copy(update={"sample_then_batch": sample_then_batch})
    model = build_model("MLP", IL["il_model_config"])
    x, y, _ = chunks[0]
    with torch.no_grad():
        reducible = torch.nn.functional.cross_entropy(model.eval()(x), y, reduction="none") - result.losses
    outcome = train(model, chunks, config, trigger_index=0, num_samples=200, device=torch.device("cpu"),
                    downsampling=downsampling, irreducible=result.losses)  # fmt: skip
    assert outcome.samples_passed == 2 * 96, "half of each of 12 full batches of 16, or 100 of 200 in 6 full batches"
    if sample_then_batch:  # chosen before the first epoch, by the untrained model
        first = {p for epoch, positions, _ in outcome.trained if epoch == 0 for p in positions.tolist()}
        assert first <= set(torch.argsort(reducible, descending=True)[:100].tolist())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"holdout_set_strategy": "Twin", "holdout_set_ratio": 30},
         "selection_strategy.downsampling_config: holdout_set_strategy Twin splits the trigger's new samples"),
        ({"holdout_set_ratio": 130}, "selection_strategy.downsampling_config: holdout_set_ratio 130 exceeds"),
        ({"il_training_config": None}, "selection_strategy.downsampling_config: RHOLoss downsampling needs "
                                       "il_training_config"),
        ({"il_training_config": {**IL, "checkpointing": {"activated": True, "interval": 5}}},
         "selection_strategy.downsampling_config.il_training_config: checkpointing: the irreducible-loss model"),
        ({"il_training_config": {**IL, "initial_model": "pretrained"}},
         "selection_strategy.downsampling_config.il_training_config.initial_model: Input should be 'random'"),
    ],
)  # fmt: skip
def test_a_wrong_rho_loss_config_is_refused_in_one_line(change, problem):
    downsampling = {"strategy": "RHOLoss", "ratio": 50, "holdout_set_strategy": "Simple", "holdout_set_ratio": 30,
                    "il_training_config": IL, **change}  # fmt: skip
    assert_refused({k: v for k, v in downsampling.items() if v is not None}, problem)


def test_the_il_model_trains_on_its_own_device_and_one_this_machine_lacks_is_named():
    from modyn_stream.pipeline.checks import device_problems

    data = modyn_format()
    data["selection_strategy"]["downsampling_config"] = {
        "strategy": "RHOLoss", "ratio": 50, "holdout_set_strategy": "Simple", "holdout_set_ratio": 30,
        "il_training_config": {**IL, "device": "cuda:99"},
    }  # fmt: skip
    config, problems = validate_data(data)
    assert not problems
    assert device_problems(config)[-1].startswith(
        "selection_strategy.downsampling_config.il_training_config.device: cuda:99, but this machine has"
    )
