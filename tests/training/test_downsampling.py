"""In-trainer downsampling as Modyn's: scores against independent computations, selection, weights, training."""

import math

import numpy as np
import pytest
import torch

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.pipeline.loading import validate_data
from modyn_stream.pipeline.schema.downsampling import DownsamplingConfig
from modyn_stream.pipeline.schema.training import TrainingSection
from modyn_stream.training.checkpoint import Checkpointer
from modyn_stream.training.downsampling import gradient_norms, proportional, select, uncertainty
from modyn_stream.training.loop import train
from modyn_stream.training.models import build_model
from tests.pipeline.test_modyn_compat import modyn_format

LOGITS = torch.tensor([[2.0, 1.0, 0.0], [0.1, 0.2, 0.3], [5.0, -1.0, 0.5]])


def softmax(row):
    e = np.exp(np.array(row) - max(row))
    return e / e.sum()


def test_uncertainty_scores_are_modyns():
    probabilities = [softmax(row) for row in LOGITS.tolist()]
    entropy = [float((np.log(p + 1e-6) * p).sum()) for p in probabilities]
    margin = [float(np.sort(p)[-1] - np.sort(p)[-2]) for p in probabilities]
    assert uncertainty(LOGITS, "LeastConfidence").tolist() == [2.0, 0.30000001192092896, 5.0]  # the largest logit
    assert uncertainty(LOGITS, "Entropy").tolist() == pytest.approx(entropy, abs=1e-6)
    assert uncertainty(LOGITS, "Margin").tolist() == pytest.approx(margin, abs=1e-6)
    binary = torch.tensor([[-2.0], [0.5]])
    assert uncertainty(binary, "LeastConfidence").tolist() == [2.0, 0.5]
    p = 1 / (1 + math.exp(-0.5))
    assert uncertainty(binary, "Margin")[1].item() == pytest.approx(abs(p - (1 - p)), abs=1e-6)


def test_gradient_norms_in_closed_form_equal_autograds():
    targets = torch.tensor([0, 2, 1])
    closed = gradient_norms(LOGITS, targets, torch.nn.CrossEntropyLoss(reduction="none"))
    generic = gradient_norms(
        LOGITS, targets, lambda out, y: torch.nn.functional.cross_entropy(out, y, reduction="none")
    )
    assert torch.allclose(closed, generic, atol=1e-6)


def test_proportional_draws_by_score_and_weights_one_over_n_p():
    scores = torch.tensor([1.0, 0.0, 3.0, 4.0])
    draws = [proportional(scores, 2, torch.Generator().manual_seed(s))[0].tolist() for s in range(200)]
    assert all(1 not in d and len(set(d)) == 2 for d in draws), "no zero-score sample, no repeats"
    counts = np.bincount([i for d in draws for i in d], minlength=4)
    assert counts[3] > counts[2] > counts[0]
    chosen, weights = proportional(scores, 2, torch.Generator().manual_seed(0))
    assert torch.allclose(weights, (1 / (4 * scores[chosen] / scores.sum())).float())
    again = proportional(scores, 2, torch.Generator().manual_seed(0))[0]
    assert torch.equal(chosen, again), "the same seed, the same draw"


def test_uncertainty_keeps_the_most_uncertain_with_weight_one():
    model = torch.nn.Identity()
    config = DownsamplingConfig(strategy="Uncertainty", score_metric="Margin", ratio=50)
    chosen, weights = select(config, model, LOGITS, torch.zeros(3, dtype=torch.long), None, 1, torch.Generator())
    assert chosen.tolist() == [1] and weights.tolist() == [1.0], "the flattest outputs have the smallest margin"


@pytest.mark.parametrize("strategy", [{"strategy": "Loss"}, {"strategy": "GradNorm"},
                                      {"strategy": "Uncertainty", "score_metric": "Entropy"}])  # fmt: skip
def test_downsampled_training_trains_on_the_kept_part_and_is_reproducible(strategy):
    config = TrainingSection.model_validate({
        "batch_size": 16, "seed": 3, "epochs_per_trigger": 2,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.1}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    downsampling = DownsamplingConfig(ratio=25, **strategy)  # 4 of each 16: four batches make one
    x = torch.randn(128, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()

    def run(d):
        torch.manual_seed(1)
        model = build_model("MLP", {"in_features": 4, "num_classes": 2, "hidden": [8]})
        outcome = train(model, [(x, y, torch.ones(128))], config, trigger_index=0, num_samples=128,
                        device=torch.device("cpu"), downsampling=d)  # fmt: skip
        return model.state_dict(), outcome

    (first, outcome), (second, _), (full, whole) = run(downsampling), run(downsampling), run(None)
    assert outcome.samples_passed == 2 * 32 and whole.samples_passed == 2 * 128, "a quarter of each epoch"
    assert all(torch.equal(first[k], second[k]) for k in first), "the same seed, the same selection and weights"
    assert not all(torch.equal(first[k], full[k]) for k in first)


class Recording(torch.nn.Module):
    """A linear model that records the sample ids (its single input feature) of each epoch it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.linear, self.seen = torch.nn.Linear(1, 2), []

    def forward(self, x):
        self.seen.append(x[:, 0].long().tolist())
        return self.linear(x)


def rs2_epochs(with_replacement: bool, seed: int = 3, chunks: int = 4) -> list[list[int]]:
    """The ids each of 4 epochs trains on with RS2 at 25% of 64 samples (batch 4: 4 batches per epoch)."""
    config = TrainingSection.model_validate({
        "batch_size": 4, "seed": seed, "epochs_per_trigger": 4,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.1}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    ids = torch.arange(64, dtype=torch.float32)[:, None]
    parts = [(x, x[:, 0].long() % 2, torch.ones(len(x))) for x in ids.chunk(chunks)]  # as the loader's chunks
    model = Recording()
    downsampling = DownsamplingConfig(strategy="RS2", ratio=25, with_replacement=with_replacement)
    outcome = train(model, parts, config, trigger_index=0, num_samples=64, device=torch.device("cpu"),
                    downsampling=downsampling)  # fmt: skip
    assert outcome.samples_passed == 4 * 16
    return [[i for batch in model.seen[epoch * 4 : epoch * 4 + 4] for i in batch] for epoch in range(4)]


def test_rs2_without_replacement_trains_on_every_sample_once_in_ratio_sized_parts():
    epochs = rs2_epochs(with_replacement=False)
    assert [len(e) for e in epochs] == [16] * 4
    assert sorted(i for epoch in epochs for i in epoch) == list(range(64)), "four quarters: each sample once"
    halves = rs2_epochs(with_replacement=False, chunks=2)
    assert [sorted(e) for e in epochs] == [sorted(e) for e in halves], "the same subsets however the data arrives"
    assert epochs != rs2_epochs(with_replacement=False, seed=4)


def test_rs2_with_replacement_draws_a_new_subset_each_epoch():
    epochs = rs2_epochs(with_replacement=True)
    assert all(len(set(e)) == 16 for e in epochs) and len({tuple(sorted(e)) for e in epochs}) == 4
    assert len({i for epoch in epochs for i in epoch}) < 64, "drawn anew each epoch: some samples twice, others never"
    assert epochs == rs2_epochs(with_replacement=True)


def test_a_modyn_rs2_config_validates_as_modyn_s():
    data = modyn_format()
    data["selection_strategy"]["downsampling_config"] = {"strategy": "RS2", "ratio": 30, "with_replacement": False}
    config, problems = validate_data(data)
    assert not problems, "sample_then_batch defaults to true; any ratio (no batch to divide)"
    assert config.selection_strategy.downsampling().sample_then_batch


@pytest.mark.parametrize(
    ("downsampling", "problem"),
    [
        ({"strategy": "Loss", "ratio": 30},
         "(top level): selection_strategy.downsampling_config.ratio: keeps 9 of each batch of 32, which does not"),
        ({"strategy": "Loss", "ratio": 50, "balance": True, "sample_then_batch": True},
         "selection_strategy.downsampling_config: balance is not a field of Loss downsampling"),
        ({"strategy": "Loss", "ratio": 50, "score_metric": "Margin"},
         "selection_strategy.downsampling_config: score_metric is not a field of Loss downsampling (it is "
         "Uncertainty's"),
        ({"strategy": "Uncertainty", "ratio": 50, "score_metric": "Margin", "balance": True},
         "selection_strategy.downsampling_config: balance (a selection per class of the whole training set) needs"),
        ({"strategy": "RS2", "ratio": 50},
         "selection_strategy.downsampling_config: RS2 downsampling needs with_replacement"),
        ({"strategy": "RS2", "ratio": 50, "with_replacement": True, "sample_then_batch": False},
         "selection_strategy.downsampling_config: RS2 samples the whole training set every epoch"),
        ({"strategy": "Loss", "ratio": 50, "with_replacement": False},
         "selection_strategy.downsampling_config: with_replacement is not a field of Loss downsampling"),
        ({"strategy": "Submodular", "ratio": 50},
         "selection_strategy.downsampling_config: Submodular downsampling needs submodular_function"),
        ({"strategy": "KcenterGreedy", "ratio": 50, "greedy": "LazyGreedy"},
         "selection_strategy.downsampling_config: greedy is not a field of KcenterGreedy downsampling (it is Craig's"),
        ({"strategy": "Craig", "ratio": 50, "greedy": "FastestGreedy"},
         "selection_strategy.downsampling_config.greedy: Input should be 'NaiveGreedy', 'LazyGreedy',"),
        ({"strategy": "RHOLoss", "ratio": 50},
         "selection_strategy.downsampling_config: RHOLoss downsampling needs holdout_set_strategy"),
    ],
)  # fmt: skip
def test_a_wrong_downsampling_config_is_refused_in_one_line(downsampling, problem):
    assert_refused(downsampling, problem)


def assert_refused(downsampling: dict, problem: str) -> None:
    """The Modyn-format pipeline with this downsampling_config has one problem, starting with `problem`."""
    data = modyn_format()
    data["selection_strategy"]["downsampling_config"] = downsampling
    problems = validate_data(data)[1]
    assert len(problems) == 1 and problems[0].startswith(problem), problems


class Confident(torch.nn.Module):
    """Outputs (c, -c) for an input (id, c), so its confidence is |c|, fixed (a bias trained at lr 0); records the
    ids each training step sees and counts the samples scored (forwards in eval mode)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias, self.seen, self.scored = torch.nn.Parameter(torch.zeros(2)), [], 0

    def forward(self, x):
        if self.training:
            self.seen.append(x[:, 0].long().tolist())
        else:
            self.scored += len(x)
        return torch.stack([x[:, 1], -x[:, 1]], dim=1) + self.bias


def stb_epochs(downsampling: dict, epochs: int = 2) -> tuple[list[list[int]], Confident, object]:
    """The ids each epoch trains on, sampling then batching 64 samples (ids 0-47 class 0, 48-63 class 1, the
    confidence of id i is i: class 1 is the most confident) at 25%, batch 4."""
    config = TrainingSection.model_validate({
        "batch_size": 4, "seed": 3, "epochs_per_trigger": epochs,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.0}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    ids = torch.arange(64, dtype=torch.float32)
    x = torch.stack([ids, ids], dim=1)
    y = (ids >= 48).long()
    parts = [(x[i : i + 16], y[i : i + 16], torch.ones(16)) for i in range(0, 64, 16)]
    model = Confident()
    outcome = train(model, parts, config, trigger_index=0, num_samples=64, device=torch.device("cpu"),
                    downsampling=DownsamplingConfig(ratio=25, sample_then_batch=True, **downsampling))  # fmt: skip
    per_epoch = len(model.seen) // epochs
    return [sorted(i for b in model.seen[e * per_epoch : (e + 1) * per_epoch] for i in b) for e in range(epochs)], \
        model, outcome  # fmt: skip


def test_sample_then_batch_scores_the_whole_set_and_balance_selects_per_class():
    epochs, model, outcome = stb_epochs({"strategy": "Uncertainty", "score_metric": "LeastConfidence"})
    assert epochs == [list(range(16))] * 2, "the 16 least confident of all 64"
    assert model.scored == 2 * 64, "period 1: the whole set scored before each epoch"
    assert outcome.samples_passed == 2 * 16 and outcome.downsample_s > 0
    balanced = stb_epochs({"strategy": "Uncertainty", "score_metric": "LeastConfidence", "balance": True})[0]
    assert balanced == [list(range(12)) + list(range(48, 52))] * 2, "a quarter of each class: 12 and 4"


@pytest.mark.parametrize(("period", "scorings"), [(0, 1), (2, 2), (1, 4)])
def test_sample_then_batch_selects_again_every_period_epochs(period, scorings):
    epochs, model, _ = stb_epochs({"strategy": "Loss", "period": period}, epochs=4)
    assert model.scored == scorings * 64
    assert all(len(e) == 16 for e in epochs)
    if period == 0:
        assert epochs[0] == epochs[3], "once per trigger: the same selection every epoch"
    assert epochs == stb_epochs({"strategy": "Loss", "period": period}, epochs=4)[0], "same seed, same selection"


class Killed(Exception):
    pass


@pytest.mark.parametrize(
    "strategy",
    [{"strategy": "Loss"}, {"strategy": "KcenterGreedy"}, {"strategy": "Craig", "greedy": "StochasticGreedy"},
     {"strategy": "Uncertainty", "score_metric": "Margin", "sample_then_batch": True, "period": 2},
     {"strategy": "GradMatch", "sample_then_batch": True}],
    ids=lambda d: "-".join(map(str, d.values())),
)  # fmt: skip
def test_a_downsampled_trigger_killed_after_a_checkpoint_resumes_to_the_uninterrupted_weights(strategy, tmp_path):
    data = modyn_format()
    data["selection_strategy"]["downsampling_config"] = {"ratio": 25, **strategy}
    data["training"]["checkpointing"] = {"activated": True, "interval": 3}
    assert not validate_data(data)[1], "checkpointing with downsampling is accepted"
    config = TrainingSection.model_validate({
        "batch_size": 16, "seed": 3, "epochs_per_trigger": 3, "drop_last_batch": False,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.1, "momentum": 0.9}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    x = torch.randn(300, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] + x[:, 1] > 0).long()
    chunks = [(x[i : i + 64], y[i : i + 64], torch.ones(len(x[i : i + 64]))) for i in range(0, 300, 64)]
    downsampling = DownsamplingConfig(ratio=25, **strategy)
    saves = []

    def run(name=None, kill_at=None):
        def after_save():
            saves.append(name)
            if len(saves) == kill_at:
                raise Killed

        torch.manual_seed(1)
        model = build_model("MLP", {"in_features": 4, "num_classes": 2, "hidden": [8]})
        checkpointer = None if name is None else Checkpointer(ArtifactStore(tmp_path), tmp_path / name, {}, 3,
                                                              after_save)  # fmt: skip
        outcome = train(model, chunks, config, trigger_index=0, num_samples=300, device=torch.device("cpu"),
                        checkpointer=checkpointer, downsampling=downsampling)  # fmt: skip
        return model.state_dict(), [(e, p.tolist(), w.tolist()) for e, p, w in outcome.trained]

    plain = run()
    whole = run("a")
    assert all(torch.equal(plain[0][k], whole[0][k]) for k in plain[0]), "checkpointing changes nothing trained"
    assert plain[1] == whole[1]
    checkpoints = len(saves)
    assert checkpoints >= 4
    with pytest.raises(Killed):
        run("b", kill_at=checkpoints + checkpoints // 2 + 1)  # killed in the second half of the trigger
    resumed = run("b")
    assert resumed[1] == whole[1], "the same samples, in the same order, with the same weights"
    assert all(torch.equal(whole[0][k], resumed[0][k]) for k in whole[0]), "as if never interrupted"


def test_the_trainer_downsamples_only_after_the_warmup_triggers():
    data = modyn_format()
    data["selection_strategy"] |= {"warmup_triggers": 2,
                                   "downsampling_config": {"strategy": "Loss", "ratio": 50}}  # fmt: skip
    config, problems = validate_data(data)
    assert not problems
    assert [config.selection_strategy.downsampling(i) is None for i in range(4)] == [True, True, False, False]


def multi(thresholds: list[int], second: dict | None = None) -> dict:
    return {"downsampling_list": [{"strategy": "Loss", "ratio": 50}, second or {"strategy": "No"},
                                  {"strategy": "RS2", "ratio": 25, "with_replacement": True}],
            "downsampling_thresholds": thresholds}  # fmt: skip


def test_modyn_s_multi_downsampling_switches_downsamplers_at_its_thresholds():
    data = modyn_format()
    data["selection_strategy"] |= {"warmup_triggers": 1, "downsampling_config": multi([5, 10])}
    config, problems = validate_data(data)
    assert not problems
    chosen = [config.selection_strategy.downsampling(i) for i in range(12)]
    assert chosen[0] is None, "the warmup trigger trains on all its data"
    assert [d.strategy for d in chosen[1:5]] == ["Loss"] * 4
    assert chosen[5:10] == [None] * 5, "the second downsampler is No"
    assert [d.strategy for d in chosen[10:]] == ["RS2"] * 2


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        (multi([5]), "selection_strategy.downsampling_config: downsampling_thresholds: 3 downsamplers take 2 "
                     "thresholds, not 1"),
        (multi([5, 5]), "selection_strategy.downsampling_config: downsampling_thresholds must increase"),
        (multi([5, 10], {"strategy": "GradNorm", "ratio": 30}),
         "(top level): selection_strategy.downsampling_config.downsampling_list[1].ratio: keeps 9 of each batch of 32"),
        (multi([5, 10], {"strategy": "GradNorm", "ratio": 50, "greedy": "LazyGreedy"}),
         "selection_strategy.downsampling_config.downsampling_list[1]: greedy is not a field of GradNorm"),
    ],
)  # fmt: skip
def test_a_wrong_multi_downsampling_is_refused_in_one_line_naming_its_place(config, problem):
    assert_refused(config, problem)
