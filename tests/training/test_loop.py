"""The training loop's pieces without Kafka: batching across chunks, the payload cache, seeded training."""

import pytest
import torch

from modyn_stream.artifacts import ArtifactStore
from modyn_stream.pipeline.schema.training import TrainingSection
from modyn_stream.training.checkpoint import Checkpointer
from modyn_stream.training.loop import _batches, train
from modyn_stream.training.models import build_model


def chunk(start, n):
    x = torch.arange(start, start + n, dtype=torch.float32)
    return x, x.long(), torch.ones(n)


def test_batches_have_a_fixed_size_across_chunk_boundaries():
    sizes = [len(b[0]) for b in _batches([chunk(0, 5), chunk(5, 7), chunk(12, 2)], 4, drop_last=False)]
    assert sizes == [4, 4, 4, 2]
    assert [len(b[0]) for b in _batches([chunk(0, 5), chunk(5, 7), chunk(12, 2)], 4, drop_last=True)] == [4, 4, 4]
    values = torch.cat([b[0] for b in _batches([chunk(0, 5), chunk(5, 7)], 3, drop_last=False)])
    assert values.tolist() == list(range(12)), "every sample once, in order"


def test_same_seed_and_data_give_the_same_weights_and_sgd_lowers_the_loss():
    config = TrainingSection.model_validate({
        "batch_size": 16, "epochs_per_trigger": 5, "seed": 1,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.5}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"}, "record_loss_every": 1,
    })  # fmt: skip
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    chunks = [(x[i : i + 64], y[i : i + 64], torch.ones(len(x[i : i + 64]))) for i in range(0, 200, 64)]
    results = []
    for _ in range(2):
        torch.manual_seed(1)
        model = build_model("MLP", {"in_features": 4, "num_classes": 2, "hidden": [8]})
        outcome = train(model, chunks, config, trigger_index=0, num_samples=200, device=torch.device("cpu"))
        results.append((model.state_dict(), outcome))
    (first, outcome), (second, _) = results
    assert all(torch.equal(first[name], second[name]) for name in first)
    # Modyn's default drop_last_batch: 12 full batches of 16 an epoch, the last 8 samples dropped
    assert outcome.epochs == 5 and outcome.samples_passed == 5 * 192 and len(outcome.losses) == 5 * 12
    assert sum(outcome.losses[-13:]) < sum(outcome.losses[:13]) / 2


class Killed(Exception):
    pass


def test_a_run_killed_after_a_checkpoint_resumes_to_the_uninterrupted_weights(tmp_path):
    config = TrainingSection.model_validate({
        "batch_size": 16, "epochs_per_trigger": 3, "seed": 2, "record_loss_every": 1, "drop_last_batch": False,
        "optimizers": [{"algorithm": "Adam", "param_groups": [{"config": {"lr": 0.01}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
        "lr_scheduler": {"name": "StepLR", "config": {"step_size": 1, "gamma": 0.5}},
        "checkpointing": {"activated": True, "interval": 5},
    })  # fmt: skip
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    chunks = [(x[i : i + 64], y[i : i + 64], torch.ones(len(x[i : i + 64]))) for i in range(0, 200, 64)]
    saves = []

    def run(path, kill_at=None):
        def after_save():
            saves.append(path.name)
            if len(saves) == kill_at:
                raise Killed

        torch.manual_seed(2)
        model = build_model("MLP", {"in_features": 4, "num_classes": 2, "hidden": [8], "dropout": 0.2})
        checkpointer = Checkpointer(ArtifactStore(tmp_path), tmp_path / path.name, {"run": path.name}, 5, after_save)
        outcome = train(model, chunks, config, trigger_index=0, num_samples=200, device=torch.device("cpu"),
                        checkpointer=checkpointer)  # fmt: skip
        return model.state_dict(), outcome

    reference, whole = run(tmp_path / "a")
    with pytest.raises(Killed):
        run(tmp_path / "b", kill_at=len(saves) + 3)  # killed just after saving at batch 15, mid-epoch 2 of 3
    resumed, outcome = run(tmp_path / "b")
    assert outcome.resumed_after == 15 and outcome.samples_passed == whole.samples_passed == 600
    assert outcome.losses == whole.losses
    assert all(torch.equal(reference[name], resumed[name]) for name in reference)
    steps = [[(e, p.tolist(), w.tolist()) for e, p, w in o.trained] for o in (outcome, whole)]
    assert steps[0] == steps[1], "the record of what was trained, as if never interrupted"
    assert saves.count("b") == 3 + 4, "after resuming only the later checkpoints (20, 25, 30, 35) are written"


def test_selector_weights_scale_each_samples_loss_only_with_uses_weights():
    config = TrainingSection.model_validate({
        "batch_size": 8, "seed": 3, "shuffle": False,
        "optimizers": [{"algorithm": "SGD", "param_groups": [{"config": {"lr": 0.5}}]}],
        "optimization_criterion": {"name": "CrossEntropyLoss"},
    })  # fmt: skip
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 0).long()
    half = torch.tensor([1.0, 0.0] * 8)  # every other sample weighs nothing

    def trained(weights, use_weights):
        torch.manual_seed(1)
        model = build_model("MLP", {"in_features": 4, "num_classes": 2, "hidden": [8]})
        train(model, [(x, y, weights)], config, trigger_index=0, num_samples=16, device=torch.device("cpu"),
              use_weights=use_weights)  # fmt: skip
        return model.state_dict()

    ignored, unweighted = trained(half, use_weights=False), trained(torch.ones(16), use_weights=False)
    assert all(torch.equal(ignored[k], unweighted[k]) for k in ignored), "without uses_weights weights are unread"
    weighted = trained(half, use_weights=True)
    assert not all(torch.equal(weighted[k], unweighted[k]) for k in weighted)
